package ffi_test

// The Go hand-off of a batch, two candidates on the same batches (issue 13,
// item 2):
//
//	(a) pdata's ProtoUnmarshaler on the OTLP bytes the library encodes
//	    (today's path);
//	(b) a flat batch layout (fixed-size fields, strings as refs into a
//	    per-file table of interned Go strings, new strings carried once in
//	    the batch) that Go turns into pdata by hand.
//
// (b) is a prototype, faithful in what it costs Go: the flat bytes are
// produced here from the same batch, so the library's side of (b) is not
// measured. Both end in the same ptrace.Traces / plog.Logs.
//
//	cd go/mmapreceiver && go test -run '^$' -bench 'Handoff' -benchmem ./internal/ffi/
//
// The batches have the shape of the bench app's (bench/run.py): a span with
// kind server and 4 attributes (string, int, double, bool), a log record with
// severity, a string body and 3 attributes; 1024 per batch, one resource
// (service.name plus 2 more) and one scope.

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const handoffBatch = 1024

func benchResource(r pcommon.Resource) {
	r.Attributes().PutStr("service.name", "otlp-mmap-bench")
	r.Attributes().PutStr("telemetry.sdk.language", "rust")
	r.Attributes().PutStr("telemetry.sdk.name", "opentelemetry")
}

func benchTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	benchResource(rs.Resource())
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("otlp-mmap-bench")
	ss.Scope().SetVersion("0.1.0")
	now := time.Now()
	for i := range handoffBatch {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1, byte(i), byte(i >> 8), 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		s.SetSpanID(pcommon.SpanID{2, byte(i), byte(i >> 8), 4, 5, 6, 7, 8})
		s.SetName("GET /items")
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		a := s.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutInt("http.response.status_code", 200)
		a.PutDouble("server.duration", 1.25)
		a.PutBool("cache.hit", true)
	}
	return td
}

func benchLogs() plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	benchResource(rl.Resource())
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("otlp-mmap-bench")
	now := pcommon.NewTimestampFromTime(time.Now())
	for i := range handoffBatch {
		r := sl.LogRecords().AppendEmpty()
		r.SetTimestamp(now)
		r.SetObservedTimestamp(now)
		r.SetSeverityNumber(plog.SeverityNumberInfo)
		r.SetSeverityText("INFO")
		r.Body().SetStr("served an item")
		r.Attributes().PutInt("item.id", int64(i))
		r.Attributes().PutStr("item.kind", "book")
		r.Attributes().PutBool("cached", true)
	}
	return ld
}

// ---- (b): the flat layout, and its reading into pdata

// Value types of a flat attribute.
const (
	flatStr byte = iota + 1
	flatInt
	flatDouble
	flatBool
)

// flatWriter produces the flat layout. Strings are refs into the file's
// string table: a string not in it yet is appended to the batch's section
// of new strings (what a reader library would do with dictionary entries and
// repeated inline strings it has seen before).
type flatWriter struct {
	refs    map[string]uint32
	newStrs []byte // u32 count, then (u32 len, bytes)...
	nNew    uint32
	body    []byte
}

func newFlatWriter() *flatWriter { return &flatWriter{refs: map[string]uint32{}} }

func (w *flatWriter) u8(v byte)    { w.body = append(w.body, v) }
func (w *flatWriter) u32(v uint32) { w.body = binary.LittleEndian.AppendUint32(w.body, v) }
func (w *flatWriter) u64(v uint64) { w.body = binary.LittleEndian.AppendUint64(w.body, v) }

func (w *flatWriter) str(s string) {
	ref, ok := w.refs[s]
	if !ok {
		ref = uint32(len(w.refs))
		w.refs[s] = ref
		w.newStrs = binary.LittleEndian.AppendUint32(w.newStrs, uint32(len(s)))
		w.newStrs = append(w.newStrs, s...)
		w.nNew++
	}
	w.u32(ref)
}

func (w *flatWriter) attrs(m pcommon.Map) {
	w.u32(uint32(m.Len()))
	for k, v := range m.All() {
		w.str(k)
		switch v.Type() {
		case pcommon.ValueTypeStr:
			w.u8(flatStr)
			w.str(v.Str())
		case pcommon.ValueTypeInt:
			w.u8(flatInt)
			w.u64(uint64(v.Int()))
		case pcommon.ValueTypeDouble:
			w.u8(flatDouble)
			w.u64(math.Float64bits(v.Double()))
		case pcommon.ValueTypeBool:
			w.u8(flatBool)
			if v.Bool() {
				w.u8(1)
			} else {
				w.u8(0)
			}
		default:
			panic("not in the prototype")
		}
	}
}

// batch returns the flat batch and starts the next one.
func (w *flatWriter) batch() []byte {
	out := binary.LittleEndian.AppendUint32(nil, w.nNew)
	out = append(out, w.newStrs...)
	out = append(out, w.body...)
	w.newStrs, w.nNew, w.body = nil, 0, nil
	return out
}

func flatTraces(w *flatWriter, td ptrace.Traces) []byte {
	rss := td.ResourceSpans()
	w.u32(uint32(rss.Len()))
	for i := range rss.Len() {
		rs := rss.At(i)
		w.attrs(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		w.u32(uint32(sss.Len()))
		for j := range sss.Len() {
			ss := sss.At(j)
			w.str(ss.Scope().Name())
			w.str(ss.Scope().Version())
			spans := ss.Spans()
			w.u32(uint32(spans.Len()))
			for k := range spans.Len() {
				s := spans.At(k)
				tid, sid, pid := s.TraceID(), s.SpanID(), s.ParentSpanID()
				w.body = append(w.body, tid[:]...)
				w.body = append(w.body, sid[:]...)
				w.body = append(w.body, pid[:]...)
				w.str(s.Name())
				w.u8(byte(s.Kind()))
				w.u64(uint64(s.StartTimestamp()))
				w.u64(uint64(s.EndTimestamp()))
				w.attrs(s.Attributes())
			}
		}
	}
	return w.batch()
}

func flatLogs(w *flatWriter, ld plog.Logs) []byte {
	rls := ld.ResourceLogs()
	w.u32(uint32(rls.Len()))
	for i := range rls.Len() {
		rl := rls.At(i)
		w.attrs(rl.Resource().Attributes())
		sls := rl.ScopeLogs()
		w.u32(uint32(sls.Len()))
		for j := range sls.Len() {
			sl := sls.At(j)
			w.str(sl.Scope().Name())
			w.str(sl.Scope().Version())
			recs := sl.LogRecords()
			w.u32(uint32(recs.Len()))
			for k := range recs.Len() {
				r := recs.At(k)
				w.u64(uint64(r.Timestamp()))
				w.u64(uint64(r.ObservedTimestamp()))
				w.u8(byte(r.SeverityNumber()))
				w.str(r.SeverityText())
				w.str(r.Body().Str())
				w.attrs(r.Attributes())
			}
		}
	}
	return w.batch()
}

// flatReader turns flat batches into pdata; strings is the file's table of
// interned strings, kept across batches.
type flatReader struct {
	strings []string
	b       []byte
}

func (r *flatReader) u8() byte {
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *flatReader) u32() uint32 {
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *flatReader) u64() uint64 {
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *flatReader) str() string { return r.strings[r.u32()] }

func (r *flatReader) begin(batch []byte) {
	r.b = batch
	for range r.u32() {
		n := r.u32()
		r.strings = append(r.strings, string(r.b[:n]))
		r.b = r.b[n:]
	}
}

func (r *flatReader) attrs(m pcommon.Map) {
	n := int(r.u32())
	m.EnsureCapacity(n)
	for range n {
		k := r.str()
		switch r.u8() {
		case flatStr:
			m.PutStr(k, r.str())
		case flatInt:
			m.PutInt(k, int64(r.u64()))
		case flatDouble:
			m.PutDouble(k, math.Float64frombits(r.u64()))
		case flatBool:
			m.PutBool(k, r.u8() != 0)
		}
	}
}

func (r *flatReader) traces(batch []byte) ptrace.Traces {
	r.begin(batch)
	td := ptrace.NewTraces()
	rss := td.ResourceSpans()
	nr := int(r.u32())
	rss.EnsureCapacity(nr)
	for range nr {
		rs := rss.AppendEmpty()
		r.attrs(rs.Resource().Attributes())
		ns := int(r.u32())
		sss := rs.ScopeSpans()
		sss.EnsureCapacity(ns)
		for range ns {
			ss := sss.AppendEmpty()
			ss.Scope().SetName(r.str())
			ss.Scope().SetVersion(r.str())
			n := int(r.u32())
			spans := ss.Spans()
			spans.EnsureCapacity(n)
			for range n {
				s := spans.AppendEmpty()
				s.SetTraceID(pcommon.TraceID(r.b[:16]))
				s.SetSpanID(pcommon.SpanID(r.b[16:24]))
				s.SetParentSpanID(pcommon.SpanID(r.b[24:32]))
				r.b = r.b[32:]
				s.SetName(r.str())
				s.SetKind(ptrace.SpanKind(r.u8()))
				s.SetStartTimestamp(pcommon.Timestamp(r.u64()))
				s.SetEndTimestamp(pcommon.Timestamp(r.u64()))
				r.attrs(s.Attributes())
			}
		}
	}
	return td
}

func (r *flatReader) logs(batch []byte) plog.Logs {
	r.begin(batch)
	ld := plog.NewLogs()
	rls := ld.ResourceLogs()
	nr := int(r.u32())
	rls.EnsureCapacity(nr)
	for range nr {
		rl := rls.AppendEmpty()
		r.attrs(rl.Resource().Attributes())
		ns := int(r.u32())
		sls := rl.ScopeLogs()
		sls.EnsureCapacity(ns)
		for range ns {
			sl := sls.AppendEmpty()
			sl.Scope().SetName(r.str())
			sl.Scope().SetVersion(r.str())
			n := int(r.u32())
			recs := sl.LogRecords()
			recs.EnsureCapacity(n)
			for range n {
				rec := recs.AppendEmpty()
				rec.SetTimestamp(pcommon.Timestamp(r.u64()))
				rec.SetObservedTimestamp(pcommon.Timestamp(r.u64()))
				rec.SetSeverityNumber(plog.SeverityNumber(r.u8()))
				rec.SetSeverityText(r.str())
				rec.Body().SetStr(r.str())
				r.attrs(rec.Attributes())
			}
		}
	}
	return ld
}

// ---- the benchmarks

// The flat prototype reads back what pdata decodes: same spans, same
// attributes (a check of the prototype, so that the numbers compare like
// with like).
func TestFlatPrototypeRoundTrips(t *testing.T) {
	td := benchTraces()
	w, r := newFlatWriter(), &flatReader{}
	first := r.traces(flatTraces(w, td))
	second := r.traces(flatTraces(w, td))
	if !tracesEqual(td, first) || !tracesEqual(td, second) {
		t.Fatal("flat traces differ from the original")
	}
	if len(r.strings) != 13 {
		t.Fatalf("%d interned strings, want 13 (each string once per file)", len(r.strings))
	}
	ld := benchLogs()
	lw, lr := newFlatWriter(), &flatReader{}
	got := lr.logs(flatLogs(lw, ld))
	a, _ := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	b, _ := (&plog.ProtoMarshaler{}).MarshalLogs(got)
	if string(a) != string(b) {
		t.Fatal("flat logs differ from the original")
	}
}

func tracesEqual(a, b ptrace.Traces) bool {
	x, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(a)
	y, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(b)
	return string(x) == string(y)
}

func BenchmarkHandoffSpans(b *testing.B) {
	td := benchTraces()
	otlp, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("a-pdata-unmarshal", func(b *testing.B) {
		var um ptrace.ProtoUnmarshaler
		b.SetBytes(int64(len(otlp)))
		for b.Loop() {
			got, err := um.UnmarshalTraces(otlp)
			if err != nil || got.SpanCount() != handoffBatch {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/span")
	})
	b.Run("b-flat-interned", func(b *testing.B) {
		w, r := newFlatWriter(), &flatReader{}
		r.traces(flatTraces(w, td)) // the file's strings arrive with its first batch
		flat := flatTraces(w, td)
		b.SetBytes(int64(len(flat)))
		for b.Loop() {
			if got := r.traces(flat); got.SpanCount() != handoffBatch {
				b.Fatal("short")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/span")
	})
}

func BenchmarkHandoffLogs(b *testing.B) {
	ld := benchLogs()
	otlp, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("a-pdata-unmarshal", func(b *testing.B) {
		var um plog.ProtoUnmarshaler
		b.SetBytes(int64(len(otlp)))
		for b.Loop() {
			got, err := um.UnmarshalLogs(otlp)
			if err != nil || got.LogRecordCount() != handoffBatch {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/record")
	})
	b.Run("b-flat-interned", func(b *testing.B) {
		w, r := newFlatWriter(), &flatReader{}
		r.logs(flatLogs(w, ld))
		flat := flatLogs(w, ld)
		b.SetBytes(int64(len(flat)))
		for b.Loop() {
			if got := r.logs(flat); got.LogRecordCount() != handoffBatch {
				b.Fatal("short")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/record")
	})
}
