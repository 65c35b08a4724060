package ffi // import "github.com/otelcol-mmap/mmapreceiver/internal/ffi"

/*
#cgo CFLAGS: -I${SRCDIR}
#include "otlp_mmap.h"
*/
import "C"

import "time"

// WriterPresumedGone says whether the writer of a file whose liveness lock
// the reader never saw held is presumed gone: the lock is not held, the
// file's start time is at least grace before now, and nothing was written
// to the file nor read from it over grace of these calls (the first call
// starts the watch). From then on the reader handles the writer as gone.
func (r *Reader) WriterPresumedGone(now time.Time, grace time.Duration) (bool, error) {
	var out C.int32_t
	var e C.OmError
	if rc := C.om_reader_writer_presumed_gone(r.p, C.uint64_t(now.UnixNano()), C.uint64_t(grace.Nanoseconds()), &out, &e); rc != C.OM_OK {
		return false, newError("om_reader_writer_presumed_gone", rc, &e)
	}
	return out == 1, nil
}
