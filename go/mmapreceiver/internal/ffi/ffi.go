// Package ffi is a thin Go wrapper over the C API of the otlp-mmap-ffi Rust
// library, linked statically. otlp_mmap.h beside this file is a copy of the
// library's generated header (rust/otlp-mmap-ffi/include/otlp_mmap.h; a Rust
// test keeps both equal). The library is found by name: the build supplies
// its directory with CGO_LDFLAGS=-L<dir> (README.md, "Use the mmap receiver
// in your own distribution").
//
// None of the wrapped calls block; a Reader is not safe for concurrent use
// (callers serialize access to one Reader themselves).
package ffi // import "github.com/otelcol-mmap/mmapreceiver/internal/ffi"

/*
#cgo CFLAGS: -I${SRCDIR}
#cgo LDFLAGS: -lotlp_mmap_ffi -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#include <stdlib.h>
#include "otlp_mmap.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"
)

// libraryDigest is set by the Makefile (`-ldflags -X`) to a digest of the
// static library. Go's build cache does not look at the library that
// `#cgo LDFLAGS` links, so without a link flag that changes with the library a
// rebuilt library would not be linked in again. Nothing reads it: setting it
// is what matters.
var libraryDigest = "unset" //nolint:unused // set by -ldflags -X

// Signal selects one of the three rings of a file.
type Signal int32

// The signals, numbered as in the C API.
const (
	Traces  Signal = C.OM_SIGNAL_TRACES
	Logs    Signal = C.OM_SIGNAL_LOGS
	Metrics Signal = C.OM_SIGNAL_METRICS
)

// Signals lists every signal in C index order.
var Signals = [...]Signal{Traces, Logs, Metrics}

func (s Signal) String() string {
	switch s {
	case Traces:
		return "traces"
	case Logs:
		return "logs"
	case Metrics:
		return "metrics"
	}
	return fmt.Sprintf("signal(%d)", int32(s))
}

// Status codes of the C API.
const (
	StatusOK          = int32(C.OM_OK)
	StatusEmpty       = int32(C.OM_EMPTY)
	StatusBusy        = int32(C.OM_BUSY)
	StatusErrNull     = int32(C.OM_ERR_NULL)
	StatusErrArgument = int32(C.OM_ERR_ARGUMENT)
	StatusErrOpen     = int32(C.OM_ERR_OPEN)
	StatusErrLocked   = int32(C.OM_ERR_LOCKED)
	StatusErrToken    = int32(C.OM_ERR_TOKEN)
	StatusErrIO       = int32(C.OM_ERR_IO)
	StatusErrFull     = int32(C.OM_ERR_FULL)
	StatusErrHandle   = int32(C.OM_ERR_HANDLE)
	StatusErrPanic    = int32(C.OM_ERR_PANIC)
)

// Error is a failed C API call.
type Error struct {
	Op      string // the C function
	Code    int32  // OM_ERR_*
	Message string // message written by the library, may be empty
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %s", e.Op, codeName(e.Code))
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, codeName(e.Code), e.Message)
}

// Code returns the OM_* status code carried by err, or -1 when err is not an
// *Error.
func Code(err error) int32 {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

func codeName(code int32) string {
	switch code {
	case StatusErrNull:
		return "OM_ERR_NULL"
	case StatusErrArgument:
		return "OM_ERR_ARGUMENT"
	case StatusErrOpen:
		return "OM_ERR_OPEN"
	case StatusErrLocked:
		return "OM_ERR_LOCKED"
	case StatusErrToken:
		return "OM_ERR_TOKEN"
	case StatusErrIO:
		return "OM_ERR_IO"
	case StatusErrFull:
		return "OM_ERR_FULL"
	case StatusErrHandle:
		return "OM_ERR_HANDLE"
	case StatusErrPanic:
		return "OM_ERR_PANIC"
	case StatusBusy:
		return "OM_BUSY"
	case StatusEmpty:
		return "OM_EMPTY"
	}
	return fmt.Sprintf("status %d", code)
}

func newError(op string, rc C.int32_t, e *C.OmError) error {
	msg := C.GoString(&e.message[0])
	return &Error{Op: op, Code: int32(rc), Message: msg}
}

func unixNano(t time.Time) C.uint64_t {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return C.uint64_t(n)
}

// Options configure a Reader (OmReaderOptions).
type Options struct {
	MaxInFlightSpans       uint64
	MaxSpanAge             time.Duration
	MaxBatchSpans          uint64
	MaxBatchLogs           uint64
	MetricCardinalityLimit uint64
	StuckSlotTimeout       time.Duration
	// Flat: traces and logs batches come in the flat layout (package
	// internal/flat decodes them) rather than as OTLP requests.
	Flat bool
}

// DefaultOptions returns the library's default options.
func DefaultOptions() Options {
	var o C.OmReaderOptions
	C.om_reader_options_default(&o)
	return Options{
		MaxInFlightSpans:       uint64(o.max_in_flight_spans),
		MaxSpanAge:             time.Duration(o.max_span_age_nanos),
		MaxBatchSpans:          uint64(o.max_batch_spans),
		MaxBatchLogs:           uint64(o.max_batch_logs),
		MetricCardinalityLimit: uint64(o.metric_cardinality_limit),
		StuckSlotTimeout:       time.Duration(o.stuck_slot_timeout_nanos),
		Flat:                   o.flat_handoff != 0,
	}
}

// Reader reads one OTLP-MMAP file (OmReader).
type Reader struct {
	p *C.OmReader
}

// OpenFile reads the OTLP-MMAP file open as f (read-write), which the
// caller opened and checked; f.Name() is the path where it was found. The
// library keeps a duplicate of the descriptor: the caller still owns f and
// may close it at once.
func OpenFile(f *os.File, opts Options) (*Reader, error) {
	cpath := C.CString(f.Name())
	defer C.free(unsafe.Pointer(cpath))
	o := cOptions(opts)
	var out *C.OmReader
	var e C.OmError
	var rc C.int32_t
	conn, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	// Control keeps the descriptor open (and f from being closed) while
	// the library duplicates it.
	if err := conn.Control(func(fd uintptr) {
		rc = C.om_reader_open_fd(C.int(fd), cpath, &o, &out, &e)
	}); err != nil {
		return nil, err
	}
	if rc != C.OM_OK {
		return nil, newError("om_reader_open_fd", rc, &e)
	}
	if out == nil {
		return nil, &Error{Op: "om_reader_open_fd", Code: StatusErrNull, Message: "library returned no reader"}
	}
	return &Reader{p: out}, nil
}

func cOptions(opts Options) C.OmReaderOptions {
	var o C.OmReaderOptions
	C.om_reader_options_default(&o)
	o.max_in_flight_spans = C.uint64_t(opts.MaxInFlightSpans)
	o.max_span_age_nanos = C.uint64_t(opts.MaxSpanAge.Nanoseconds())
	o.max_batch_spans = C.uint64_t(opts.MaxBatchSpans)
	o.max_batch_logs = C.uint64_t(opts.MaxBatchLogs)
	o.metric_cardinality_limit = C.uint64_t(opts.MetricCardinalityLimit)
	o.stuck_slot_timeout_nanos = C.uint64_t(opts.StuckSlotTimeout.Nanoseconds())
	o.flat_handoff = 0
	if opts.Flat {
		o.flat_handoff = 1
	}
	return o
}

// Batch is one export request handed out by Poll.
type Batch struct {
	// Data is the OTLP protobuf request (with Options.Flat, traces and logs
	// come in the flat layout). It points into memory owned by the
	// library and is valid only until the next Poll or Commit of the same
	// signal, or Close: unmarshal (copy) it before that.
	Data  []byte
	Token uint64
	Items uint64
	// RecordsConsumed counts the records taken from the signal's ring so
	// far; every Poll sets it, also when there is no batch.
	RecordsConsumed uint64
}

// Poll reads more of the signal's ring and returns its pending batch;
// ok is false when there is nothing to deliver now.
func (r *Reader) Poll(sig Signal, now time.Time) (b Batch, ok bool, err error) {
	var out C.OmBatch
	var e C.OmError
	rc := C.om_reader_poll(r.p, C.int32_t(sig), unixNano(now), &out, &e)
	switch rc {
	case C.OM_OK:
	case C.OM_EMPTY:
		return Batch{RecordsConsumed: uint64(out.records_consumed)}, false, nil
	default:
		return Batch{}, false, newError("om_reader_poll", rc, &e)
	}
	b.RecordsConsumed = uint64(out.records_consumed)
	b.Token = uint64(out.token)
	b.Items = uint64(out.items)
	if out.len > 0 && out.data != nil {
		b.Data = unsafe.Slice((*byte)(unsafe.Pointer(out.data)), int(out.len))
	}
	return b, true, nil
}

// SignalSet holds signals, bit 1<<Signal each.
type SignalSet uint32

// Has tells whether sig is in the set.
func (s SignalSet) Has(sig Signal) bool { return s&(1<<uint32(sig)) != 0 }

// With returns the set with sig added.
func (s SignalSet) With(sig Signal) SignalSet { return s | 1<<uint32(sig) }

// Watcher is a library thread that watches parked (idle) readers, so that
// the caller needs no timer per file (OmWatcher). Safe for concurrent use.
type Watcher struct {
	mu sync.Mutex
	p  *C.OmWatcher
}

// StartWatcher starts the thread: every interval it looks at the parked
// readers and writes the token (8 bytes, native byte order) of each one that
// has records to read, or whose deadline passed, to notify (the write end of
// a pipe; the library keeps a duplicate, the caller may close it).
func StartWatcher(interval time.Duration, notify *os.File) (*Watcher, error) {
	conn, err := notify.SyscallConn()
	if err != nil {
		return nil, err
	}
	var out *C.OmWatcher
	var e C.OmError
	var rc C.int32_t
	if err := conn.Control(func(fd uintptr) {
		rc = C.om_watcher_start(C.uint64_t(interval.Nanoseconds()), C.int(fd), &out, &e)
	}); err != nil {
		return nil, err
	}
	if rc != C.OM_OK {
		return nil, newError("om_watcher_start", rc, &e)
	}
	return &Watcher{p: out}, nil
}

// Park leaves r to the watcher under token until a writer claims a record in
// the ring of one of signals (in each ring: wakeAt[signal] records past the
// reader's next one; 0 or 1: the first), the writer
// starts over, or due passes. Park a reader only when its last polls found
// nothing (no pending batch).
func (w *Watcher) Park(r *Reader, token uint64, signals SignalSet, due time.Time, wakeAt [3]uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var e C.OmError
	if rc := C.om_watcher_park(w.p, r.p, C.uint64_t(token), C.uint32_t(signals), unixNano(due),
		C.uint64_t(wakeAt[Traces]), C.uint64_t(wakeAt[Logs]), C.uint64_t(wakeAt[Metrics]), &e); rc != C.OM_OK {
		return newError("om_watcher_park", rc, &e)
	}
	return nil
}

// Unpark forgets the reader parked under token; false if it was not parked
// (woken already).
func (w *Watcher) Unpark(token uint64) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var e C.OmError
	switch rc := C.om_watcher_unpark(w.p, C.uint64_t(token), &e); rc {
	case C.OM_OK:
		return true, nil
	case C.OM_EMPTY:
		return false, nil
	default:
		return false, newError("om_watcher_unpark", rc, &e)
	}
}

// Close stops the thread (waiting for it) and closes the library's
// duplicate of the pipe. Closing twice is harmless.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil {
		return nil
	}
	rc := C.om_watcher_close(w.p)
	w.p = nil
	if rc != C.OM_OK {
		return &Error{Op: "om_watcher_close", Code: int32(rc)}
	}
	return nil
}

// Commit releases the pending batch identified by token.
func (r *Reader) Commit(sig Signal, token uint64) error {
	var e C.OmError
	if rc := C.om_reader_commit(r.p, C.int32_t(sig), C.uint64_t(token), &e); rc != C.OM_OK {
		return newError("om_reader_commit", rc, &e)
	}
	return nil
}

// StartFlatOver tells the library that a flat traces or logs batch of sig
// could not be decoded: its string table for sig starts over under a new
// epoch, so later batches do not refer to strings the decoder never got.
// The pending batch is laid out again at the next Poll; Commit drops it.
func (r *Reader) StartFlatOver(sig Signal) error {
	var e C.OmError
	if rc := C.om_reader_flat_start_over(r.p, C.int32_t(sig), &e); rc != C.OM_OK {
		return newError("om_reader_flat_start_over", rc, &e)
	}
	return nil
}

// CollectMetrics snapshots the metric aggregates into a batch for the next
// metrics Poll (nothing happens when no series has data). busy is true when
// the previous metrics batch is still uncommitted (the measurements keep
// aggregating; try again later).
func (r *Reader) CollectMetrics(now time.Time) (busy bool, err error) {
	var e C.OmError
	switch rc := C.om_reader_collect_metrics(r.p, unixNano(now), &e); rc {
	case C.OM_OK, C.OM_EMPTY:
		return false, nil
	case C.OM_BUSY:
		return true, nil
	default:
		return false, newError("om_reader_collect_metrics", rc, &e)
	}
}

// AbandonSpans turns every in-flight span into an incomplete span that the
// next traces polls return.
func (r *Reader) AbandonSpans(now time.Time) error {
	var e C.OmError
	if rc := C.om_reader_abandon_spans(r.p, unixNano(now), &e); rc != C.OM_OK {
		return newError("om_reader_abandon_spans", rc, &e)
	}
	return nil
}

// StopSpans gives up every in-flight span with the reason "collector
// stopping" (the Collector stops and keeps no state): they come out of the
// next traces polls as incomplete spans. It returns how many were given up.
func (r *Reader) StopSpans(now time.Time) (uint64, error) {
	var e C.OmError
	var n C.uint64_t
	if rc := C.om_reader_stop_spans(r.p, unixNano(now), &n, &e); rc != C.OM_OK {
		return 0, newError("om_reader_stop_spans", rc, &e)
	}
	return uint64(n), nil
}

// StopMeasurements makes metrics polls read no more measurements (the
// Collector is stopping); CollectMetrics still reads the ring up to the
// moment it collects.
func (r *Reader) StopMeasurements() error {
	var e C.OmError
	if rc := C.om_reader_stop_measurements(r.p, &e); rc != C.OM_OK {
		return newError("om_reader_stop_measurements", rc, &e)
	}
	return nil
}

// ReadMeasurements reads the measurements the ring holds into the metric
// aggregates without collecting (also after StopMeasurements): they count in
// Stats' RecordsRead, so a caller can tell whether any came since its last
// collection before it collects.
func (r *Reader) ReadMeasurements(now time.Time) error {
	var e C.OmError
	if rc := C.om_reader_read_measurements(r.p, unixNano(now), &e); rc != C.OM_OK {
		return newError("om_reader_read_measurements", rc, &e)
	}
	return nil
}

// RemoveIfDrained removes the file from its path when its writer is gone
// and everything of the given signals in it has been delivered (see
// om_reader_remove_if_drained). removed is false with why set when the file
// stays; err is set when the removal itself failed.
func (r *Reader) RemoveIfDrained(signals []Signal) (removed bool, why string, err error) {
	var mask C.uint32_t
	for _, s := range signals {
		mask |= 1 << uint(s)
	}
	var e C.OmError
	switch rc := C.om_reader_remove_if_drained(r.p, mask, &e); rc {
	case C.OM_OK:
		return true, "", nil
	case C.OM_BUSY:
		return false, C.GoString(&e.message[0]), nil
	default:
		return false, "", newError("om_reader_remove_if_drained", rc, &e)
	}
}

// Checkpoint returns the reader's state (spans in flight, batches not
// committed, metric aggregates, the file's identity and ring positions) as
// bytes for the Collector's storage.
func (r *Reader) Checkpoint() ([]byte, error) {
	var data *C.uint8_t
	var n C.size_t
	var e C.OmError
	if rc := C.om_reader_checkpoint(r.p, &data, &n, &e); rc != C.OM_OK {
		return nil, newError("om_reader_checkpoint", rc, &e)
	}
	return C.GoBytes(unsafe.Pointer(data), C.int(n)), nil
}

// CheckpointStored says the last checkpoint taken is stored: the span
// events and measurements it covers are given back to the writers.
func (r *Reader) CheckpointStored() error {
	var e C.OmError
	if rc := C.om_reader_checkpoint_stored(r.p, &e); rc != C.OM_OK {
		return newError("om_reader_checkpoint_stored", rc, &e)
	}
	return nil
}

// HoldUntilCheckpoint keeps span events and measurements in their rings,
// once read, until a checkpoint covering them is stored.
func (r *Reader) HoldUntilCheckpoint(hold bool) error {
	var e C.OmError
	h := C.int32_t(0)
	if hold {
		h = 1
	}
	if rc := C.om_reader_hold_until_checkpoint(r.p, h, &e); rc != C.OM_OK {
		return newError("om_reader_hold_until_checkpoint", rc, &e)
	}
	return nil
}

// Restore puts a checkpoint back into a reader that has not read anything
// yet. restored is false, with why set, when the checkpoint was refused as a
// whole (nothing changed); refused counts the spans and metrics of an
// accepted checkpoint that did not fit the reader's limits.
func (r *Reader) Restore(checkpoint []byte) (restored bool, why string, refused uint64, err error) {
	var e C.OmError
	var n C.uint64_t
	var p *C.uint8_t
	if len(checkpoint) > 0 {
		// The library only reads the bytes during the call.
		p = (*C.uint8_t)(unsafe.Pointer(&checkpoint[0]))
	}
	switch rc := C.om_reader_restore(r.p, p, C.size_t(len(checkpoint)), &n, &e); rc {
	case C.OM_OK:
		return true, "", uint64(n), nil
	case C.OM_BUSY:
		return false, C.GoString(&e.message[0]), 0, nil
	default:
		return false, "", 0, newError("om_reader_restore", rc, &e)
	}
}

// WriterGone looks at the writer's liveness lock now (one fcntl), for a
// reader that is not being polled (parked): true when this call found the
// writer gone, which it was not known to be; poll the reader then, so that
// it gives up its spans in flight.
func (r *Reader) WriterGone() (bool, error) {
	var out C.int32_t
	var e C.OmError
	if rc := C.om_reader_check_writer(r.p, &out, &e); rc != C.OM_OK {
		return false, newError("om_reader_check_writer", rc, &e)
	}
	return out == 1, nil
}

// Stats mirrors OmStats; arrays are indexed by Signal.
type Stats struct {
	RingCapacity     [3]uint64
	RingUnread       [3]uint64
	RecordsRead      [3]uint64
	CorruptRecords   [3]uint64
	AbandonedSlots   [3]uint64
	OversizedRecords [3]uint64
	IncompleteSpans  uint64
	InFlightSpans    uint64
	OrphanSpanEvents uint64
	BadRefs          uint64
	MetricOverflows  uint64
	WriterRestarts   uint64

	InvalidSpanIDs              uint64
	DuplicateSpanStarts         uint64
	SpanLimitDrops              uint64
	UnknownMetricMeasurements   uint64
	MeasurementsWithoutValue    uint64
	MeasurementsOverMetricLimit uint64
	MeasurementsLostAtRestart   uint64
	DictionaryCacheClears       uint64

	// WriterAlive is 1 while the writer holds its lock, 0 once it is known
	// to be gone (or the file was removed), -1 when unknown.
	WriterAlive int32
}

// Consumed is the records taken from the ring of sig so far: read, found
// corrupt, or skipped as abandoned (what the library's drained check counts).
func (s *Stats) Consumed(sig Signal) uint64 {
	return s.RecordsRead[sig] + s.CorruptRecords[sig] + s.AbandonedSlots[sig]
}

// DroppedRecords is, per signal, the records the reader dropped as unusable
// or over its limits (not counting corrupt slots and abandoned slots).
func (s *Stats) DroppedRecords() [3]uint64 {
	d := s.OversizedRecords
	d[Traces] += s.InvalidSpanIDs + s.DuplicateSpanStarts
	d[Metrics] += s.UnknownMetricMeasurements + s.MeasurementsWithoutValue + s.MeasurementsOverMetricLimit +
		s.MeasurementsLostAtRestart
	return d
}

// Stats returns the reader's counters.
func (r *Reader) Stats() (Stats, error) {
	var s C.OmStats
	var e C.OmError
	if rc := C.om_reader_stats(r.p, &s, &e); rc != C.OM_OK {
		return Stats{}, newError("om_reader_stats", rc, &e)
	}
	var out Stats
	for i := range 3 {
		out.RingCapacity[i] = uint64(s.ring_capacity[i])
		out.RingUnread[i] = uint64(s.ring_unread[i])
		out.RecordsRead[i] = uint64(s.records_read[i])
		out.CorruptRecords[i] = uint64(s.corrupt_records[i])
		out.AbandonedSlots[i] = uint64(s.abandoned_slots[i])
		out.OversizedRecords[i] = uint64(s.oversized_records[i])
	}
	out.IncompleteSpans = uint64(s.incomplete_spans)
	out.InFlightSpans = uint64(s.in_flight_spans)
	out.OrphanSpanEvents = uint64(s.orphan_span_events)
	out.BadRefs = uint64(s.bad_refs)
	out.MetricOverflows = uint64(s.metric_overflows)
	out.WriterRestarts = uint64(s.writer_restarts)
	out.InvalidSpanIDs = uint64(s.invalid_span_ids)
	out.DuplicateSpanStarts = uint64(s.duplicate_span_starts)
	out.SpanLimitDrops = uint64(s.span_limit_drops)
	out.UnknownMetricMeasurements = uint64(s.unknown_metric_measurements)
	out.MeasurementsWithoutValue = uint64(s.measurements_without_value)
	out.MeasurementsOverMetricLimit = uint64(s.measurements_over_metric_limit)
	out.MeasurementsLostAtRestart = uint64(s.measurements_lost_at_restart)
	out.DictionaryCacheClears = uint64(s.dictionary_cache_clears)
	out.WriterAlive = int32(s.writer_alive)
	return out, nil
}

// Close frees the reader; batches it returned become invalid. Closing twice
// is harmless.
func (r *Reader) Close() error {
	if r.p == nil {
		return nil
	}
	rc := C.om_reader_close(r.p)
	r.p = nil
	if rc != C.OM_OK {
		return &Error{Op: "om_reader_close", Code: int32(rc)}
	}
	return nil
}
