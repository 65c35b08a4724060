// Package ffitest is for tests only: it wraps the library's minimal C writer
// (om_writer_*) that tests use to produce OTLP-MMAP files, and opens a
// reader by path. Only _test.go files import it, so the receiver's builds do
// not contain it.
package ffitest // import "github.com/otelcol-mmap/mmapreceiver/internal/ffitest"

/*
#cgo CFLAGS: -I${SRCDIR}/../ffi
#cgo LDFLAGS: -lotlp_mmap_ffi -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#include <stdlib.h>
#include "otlp_mmap.h"
*/
import "C"

import (
	"os"
	"time"
	"unsafe"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// OpenReader opens the file at path read-write and reads it with a library
// reader, as the receiver does after its checks.
func OpenReader(path string, opts ffi.Options) (*ffi.Reader, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ffi.OpenFile(f, opts)
}

// Writer is the library's minimal writer (OmWriter).
type Writer struct {
	p *C.OmWriter
}

func newError(op string, rc C.int32_t, e *C.OmError) error {
	return &ffi.Error{Op: op, Code: int32(rc), Message: C.GoString(&e.message[0])}
}

func unixNano(t time.Time) C.uint64_t {
	return C.uint64_t(max(t.UnixNano(), 0))
}

// CreateWriter creates (or starts over) the file at path.
func CreateWriter(path string, ringSlots, slotSize uint32) (*Writer, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var out *C.OmWriter
	var e C.OmError
	if rc := C.om_writer_create(cpath, C.uint32_t(ringSlots), C.uint32_t(slotSize), &out, &e); rc != C.OM_OK {
		return nil, newError("om_writer_create", rc, &e)
	}
	return &Writer{p: out}, nil
}

type cstrings []*C.char

func (c *cstrings) add(s string) *C.char {
	p := C.CString(s)
	*c = append(*c, p)
	return p
}

func (c cstrings) free() {
	for _, p := range c {
		C.free(unsafe.Pointer(p))
	}
}

// Span writes a completed span with one string attribute.
func (w *Writer) Span(traceID [16]byte, spanID [8]byte, name, attrKey, attrValue string, start, end time.Time) error {
	var cs cstrings
	defer cs.free()
	tid := (*C.uint8_t)(C.CBytes(traceID[:]))
	defer C.free(unsafe.Pointer(tid))
	sid := (*C.uint8_t)(C.CBytes(spanID[:]))
	defer C.free(unsafe.Pointer(sid))
	var e C.OmError
	rc := C.om_writer_span(w.p, tid, sid, cs.add(name), cs.add(attrKey), cs.add(attrValue), unixNano(start), unixNano(end), &e)
	if rc != C.OM_OK {
		return newError("om_writer_span", rc, &e)
	}
	return nil
}

// Log writes a log record with a string body and one string attribute.
func (w *Writer) Log(body, attrKey, attrValue string, t time.Time) error {
	var cs cstrings
	defer cs.free()
	var e C.OmError
	if rc := C.om_writer_log(w.p, cs.add(body), cs.add(attrKey), cs.add(attrValue), unixNano(t), &e); rc != C.OM_OK {
		return newError("om_writer_log", rc, &e)
	}
	return nil
}

// CounterAdd records one measurement of a monotonic cumulative int sum.
func (w *Writer) CounterAdd(metricName, attrKey, attrValue string, value int64, t time.Time) error {
	var cs cstrings
	defer cs.free()
	var e C.OmError
	rc := C.om_writer_counter_add(w.p, cs.add(metricName), cs.add(attrKey), cs.add(attrValue), C.int64_t(value), unixNano(t), &e)
	if rc != C.OM_OK {
		return newError("om_writer_counter_add", rc, &e)
	}
	return nil
}

// Close closes the writer. Closing twice is harmless.
func (w *Writer) Close() error {
	if w.p == nil {
		return nil
	}
	rc := C.om_writer_close(w.p)
	w.p = nil
	if rc != C.OM_OK {
		return &ffi.Error{Op: "om_writer_close", Code: int32(rc)}
	}
	return nil
}
