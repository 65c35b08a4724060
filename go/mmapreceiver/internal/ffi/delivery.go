package ffi // import "github.com/otelcol-mmap/mmapreceiver/internal/ffi"

/*
#cgo CFLAGS: -I${SRCDIR}
#include "otlp_mmap.h"
*/
import "C"

import "unsafe"

// DeliveryMarker returns what the reader delivered since its last
// checkpoint (a few dozen bytes), to store after each committed traces or
// metrics batch beside the checkpoint.
func (r *Reader) DeliveryMarker() ([]byte, error) {
	var buf [C.OM_DELIVERY_MARKER_MAX_BYTES]byte
	var n C.size_t
	var e C.OmError
	if rc := C.om_reader_delivery_marker(r.p, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n, &e); rc != C.OM_OK {
		return nil, newError("om_reader_delivery_marker", rc, &e)
	}
	return append([]byte(nil), buf[:n]...), nil
}

// RestoreDelivered applies the delivery marker stored after the checkpoint
// just restored, before anything is polled: what it says was delivered is
// not emitted again. applied is false, with why set, when the marker was
// refused (nothing changed); skipped is the spans it skips.
func (r *Reader) RestoreDelivered(marker []byte) (applied bool, why string, skipped uint64, err error) {
	var e C.OmError
	var n C.uint64_t
	var p *C.uint8_t
	if len(marker) > 0 {
		// The library only reads the bytes during the call.
		p = (*C.uint8_t)(unsafe.Pointer(&marker[0]))
	}
	switch rc := C.om_reader_restore_delivered(r.p, p, C.size_t(len(marker)), &n, &e); rc {
	case C.OM_OK:
		return true, "", uint64(n), nil
	case C.OM_BUSY:
		return false, C.GoString(&e.message[0]), 0, nil
	default:
		return false, "", 0, newError("om_reader_restore_delivered", rc, &e)
	}
}
