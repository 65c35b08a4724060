package ffi_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
)

func TestDefaultOptions(t *testing.T) {
	o := ffi.DefaultOptions()
	assert.Equal(t, uint64(100000), o.MaxInFlightSpans)
	assert.Equal(t, 10*time.Minute, o.MaxSpanAge)
	assert.Equal(t, uint64(1024), o.MaxBatchSpans)
	assert.Equal(t, uint64(1024), o.MaxBatchLogs)
	assert.Equal(t, uint64(2000), o.MetricCardinalityLimit)
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.otlp")
	require.NoError(t, os.WriteFile(junk, []byte("junk"), 0o600))
	f, err := os.OpenFile(junk, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = ffi.OpenFile(f, ffi.DefaultOptions())
	assert.Equal(t, ffi.StatusErrOpen, ffi.Code(err))
	assert.Contains(t, err.Error(), "om_reader_open_fd")
	assert.Contains(t, err.Error(), junk, "the error names the path")

	// A closed file is refused before the library is called.
	require.NoError(t, f.Close())
	_, err = ffi.OpenFile(f, ffi.DefaultOptions())
	require.Error(t, err)
	assert.Equal(t, int32(-1), ffi.Code(err), "not a library error: %v", err)
}

// The library reads through its own duplicate of the descriptor: the caller
// may close its file right after OpenFile.
func TestOpenFileKeepsItsOwnDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dup.otlp")
	w, err := ffitest.CreateWriter(path, 64, 512)
	require.NoError(t, err)
	defer w.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	r, err := ffi.OpenFile(f, ffi.DefaultOptions())
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, f.Close())
	require.NoError(t, w.Log("after close", "k", "v", time.Now()))
	logs := pollAll(t, r, ffi.Logs, 1, (&plog.ProtoUnmarshaler{}).UnmarshalLogs, plog.Logs.LogRecordCount)
	assert.Equal(t, "after close", logs[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().AsString())
}

// pollAll polls sig until n items came out, committing every batch.
func pollAll[T any](t *testing.T, r *ffi.Reader, sig ffi.Signal, n int, decode func([]byte) (T, error), count func(T) int) []T {
	t.Helper()
	var out []T
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	for got < n && time.Now().Before(deadline) {
		b, ok, err := r.Poll(sig, time.Now())
		require.NoError(t, err)
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		v, err := decode(b.Data)
		require.NoError(t, err)
		assert.Equal(t, uint64(count(v)), b.Items)
		got += count(v)
		out = append(out, v)
		require.NoError(t, r.Commit(sig, b.Token))
		// A second commit of the same token is refused.
		assert.Equal(t, ffi.StatusErrToken, ffi.Code(r.Commit(sig, b.Token)))
	}
	require.Equal(t, n, got)
	return out
}

func TestWriteThenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rw.otlp")
	w, err := ffitest.CreateWriter(path, 1024, 512)
	require.NoError(t, err)
	defer func() { require.NoError(t, w.Close()) }()

	now := time.Now()
	tid := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	require.NoError(t, w.Span(tid, sid, "op", "k", "v1", now.Add(-time.Second), now))
	require.NoError(t, w.Log("hello", "k", "v2", now))
	require.NoError(t, w.CounterAdd("requests", "k", "v3", 5, now))
	require.NoError(t, w.CounterAdd("requests", "k", "v3", 6, now))

	r, err := ffitest.OpenReader(path, ffi.DefaultOptions())
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()

	// A second reader of the same file is refused.
	_, err = ffitest.OpenReader(path, ffi.DefaultOptions())
	assert.Equal(t, ffi.StatusErrLocked, ffi.Code(err))

	traces := pollAll(t, r, ffi.Traces, 1, (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces, ptrace.Traces.SpanCount)
	span := traces[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, "op", span.Name())
	assert.Equal(t, tid, [16]byte(span.TraceID()))
	assert.Equal(t, sid, [8]byte(span.SpanID()))
	v, _ := span.Attributes().Get("k")
	assert.Equal(t, "v1", v.Str())

	logs := pollAll(t, r, ffi.Logs, 1, (&plog.ProtoUnmarshaler{}).UnmarshalLogs, plog.Logs.LogRecordCount)
	lr := logs[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, "hello", lr.Body().AsString())

	// Let the reader aggregate, then collect.
	for range 10 {
		_, ok, err := r.Poll(ffi.Metrics, time.Now())
		require.NoError(t, err)
		require.False(t, ok, "metrics come out only after a collection")
	}
	busy, err := r.CollectMetrics(time.Now())
	require.NoError(t, err)
	require.False(t, busy)
	metrics := pollAll(t, r, ffi.Metrics, 1, (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics, pmetric.Metrics.DataPointCount)
	m := metrics[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	assert.Equal(t, "requests", m.Name())
	require.Equal(t, pmetric.MetricTypeSum, m.Type())
	assert.True(t, m.Sum().IsMonotonic())
	assert.Equal(t, int64(11), m.Sum().DataPoints().At(0).IntValue())

	s, err := r.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), s.RecordsRead[ffi.Traces], "a span is a start and an end event")
	assert.Equal(t, uint64(1), s.RecordsRead[ffi.Logs])
	assert.Equal(t, uint64(2), s.RecordsRead[ffi.Metrics])
	assert.Positive(t, s.RingCapacity[ffi.Traces])
	require.NoError(t, r.AbandonSpans(time.Now()))
}

func TestCollectBusyWhilePending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.otlp")
	w, err := ffitest.CreateWriter(path, 64, 512)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.CounterAdd("c", "k", "v", 1, time.Now()))
	r, err := ffitest.OpenReader(path, ffi.DefaultOptions())
	require.NoError(t, err)
	defer r.Close()
	_, _, err = r.Poll(ffi.Metrics, time.Now())
	require.NoError(t, err)
	busy, err := r.CollectMetrics(time.Now())
	require.NoError(t, err)
	require.False(t, busy)
	b, ok, err := r.Poll(ffi.Metrics, time.Now())
	require.NoError(t, err)
	require.True(t, ok)
	// Not committed yet: the next collection has to wait.
	busy, err = r.CollectMetrics(time.Now())
	require.NoError(t, err)
	assert.True(t, busy)
	// The same batch comes back until committed.
	b2, ok, err := r.Poll(ffi.Metrics, time.Now())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, b.Token, b2.Token)
	require.NoError(t, r.Commit(ffi.Metrics, b.Token))
	busy, err = r.CollectMetrics(time.Now())
	require.NoError(t, err)
	assert.False(t, busy)
}
