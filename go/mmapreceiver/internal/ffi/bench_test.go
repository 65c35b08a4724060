package ffi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

// The receiver's hot path per batch, without the receiver's loop:
// om_reader_poll (decode the ring, assemble spans, encode an OTLP request,
// and for the flat layout turn it into a flat batch), decode into pdata, hand to a consumer (a no-op here), om_reader_commit.
// Each iteration first writes benchBatch completed spans (or log records)
// with the om_writer_* C API, timer stopped.
//
//	cd go/mmapreceiver && go test -run '^$' -bench . -benchmem ./internal/ffi/
const benchBatch = 1024

func benchReader(b *testing.B) (*ffitest.Writer, *ffi.Reader) {
	return benchReaderWith(b, ffi.DefaultOptions())
}

func benchReaderWith(b *testing.B, opts ffi.Options) (*ffitest.Writer, *ffi.Reader) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.otlp")
	w, err := ffitest.CreateWriter(path, 4*benchBatch, 512)
	if err != nil {
		b.Fatal(err)
	}
	r, err := ffitest.OpenReader(path, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = r.Close()
		_ = w.Close()
	})
	return w, r
}

// drain polls sig until n items were consumed.
func drain(b *testing.B, r *ffi.Reader, sig ffi.Signal, n int, consume func([]byte) (int, error)) {
	got := 0
	for got < n {
		batch, ok, err := r.Poll(sig, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			continue
		}
		c, err := consume(batch.Data)
		if err != nil {
			b.Fatal(err)
		}
		got += c
		if err := r.Commit(sig, batch.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollConsumeSpans: the OTLP layout (otlp) and the flat layout
// the receiver reads (flat).
func BenchmarkPollConsumeSpans(b *testing.B) {
	b.Run("otlp", func(b *testing.B) {
		var um ptrace.ProtoUnmarshaler
		pollConsumeSpans(b, false, um.UnmarshalTraces)
	})
	b.Run("flat", func(b *testing.B) {
		var d flat.Decoder
		pollConsumeSpans(b, true, d.Traces)
	})
}

func pollConsumeSpans(b *testing.B, flatLayout bool, decode func([]byte) (ptrace.Traces, error)) {
	opts := ffi.DefaultOptions()
	opts.Flat = flatLayout
	w, r := benchReaderWith(b, opts)
	sink := consumertest.NewNop()
	ctx := context.Background()
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < benchBatch; j++ {
			tid := [16]byte{1, byte(i), byte(i >> 8), byte(j), byte(j >> 8)}
			sid := [8]byte{2, byte(i), byte(i >> 8), byte(j), byte(j >> 8)}
			if err := w.Span(tid, sid, "GET /items", "http.route", "/items", now, now.Add(time.Millisecond)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		drain(b, r, ffi.Traces, benchBatch, func(data []byte) (int, error) {
			td, err := decode(data)
			if err != nil {
				return 0, err
			}
			return td.SpanCount(), sink.ConsumeTraces(ctx, td)
		})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/span")
}

// BenchmarkPollConsumeLogs: as BenchmarkPollConsumeSpans, for log records.
func BenchmarkPollConsumeLogs(b *testing.B) {
	b.Run("otlp", func(b *testing.B) {
		var um plog.ProtoUnmarshaler
		pollConsumeLogs(b, false, um.UnmarshalLogs)
	})
	b.Run("flat", func(b *testing.B) {
		var d flat.Decoder
		pollConsumeLogs(b, true, d.Logs)
	})
}

func pollConsumeLogs(b *testing.B, flatLayout bool, decode func([]byte) (plog.Logs, error)) {
	opts := ffi.DefaultOptions()
	opts.Flat = flatLayout
	w, r := benchReaderWith(b, opts)
	sink := consumertest.NewNop()
	ctx := context.Background()
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < benchBatch; j++ {
			if err := w.Log(fmt.Sprintf("served item %d", j), "item.kind", "book", now); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		drain(b, r, ffi.Logs, benchBatch, func(data []byte) (int, error) {
			ld, err := decode(data)
			if err != nil {
				return 0, err
			}
			return ld.LogRecordCount(), sink.ConsumeLogs(ctx, ld)
		})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/record")
}

// BenchmarkIdlePoll is what every wake-up of an idle reader loop costs in
// the library: om_reader_poll on an empty ring (BenchmarkIdleStats: the
// om_reader_stats call that follows it, which checks the file's size with
// fstat), without the Go scheduler's and timers' share.
func BenchmarkIdlePoll(b *testing.B) {
	_, r := benchReader(b)
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, err := r.Poll(ffi.Traces, now); err != nil || ok {
			b.Fatal("unexpected batch", err)
		}
	}
}

func BenchmarkIdleStats(b *testing.B) {
	_, r := benchReader(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Stats(); err != nil {
			b.Fatal(err)
		}
	}
}
