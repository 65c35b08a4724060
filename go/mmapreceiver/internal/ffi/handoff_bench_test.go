package ffi_test

// The Go hand-off of a batch, the library's two layouts on the same
// batches (issue 13, item 2):
//
//	(a) otlp: the OTLP export request, decoded by pdata's ProtoUnmarshaler;
//	(b) flat: the flat layout (internal/flat), strings interned per file.
//
// The batches are real: the bench app (bench/run.py's shapes: a server span
// with 4 attributes; a log record with severity, a string body and 3
// attributes; one resource with 4 attributes, one scope) writes a file, and
// two library readers on copies of it hand out its batches, one per layout.
// Each benchmark op decodes one batch of 1024 items (the second of the
// file: the string table of (b) holds everything by then, as in a steady
// state). BenchmarkPollConsume* (bench_test.go) measures the whole path,
// library included, for both layouts.
//
//	make ffi release-bins   # the library and target/release/otlp-mmap-bench
//	cd go/mmapreceiver && go test -run '^$' -bench Handoff -benchmem -count 5 ./internal/ffi/

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

const handoffBatch = 1024

// benchAppFile writes count items of signal ("spans", "logs") with the bench
// app named by OTLP_MMAP_BENCH_APP (target/release/otlp-mmap-bench in the
// repository), or skips when it is not set.
func benchAppFile(b *testing.B, signal string, count int) string {
	app := os.Getenv("OTLP_MMAP_BENCH_APP")
	if app == "" {
		b.Skip("OTLP_MMAP_BENCH_APP not set (the bench app, target/release/otlp-mmap-bench)")
	}
	path := filepath.Join(b.TempDir(), signal+".otlp")
	cmd := exec.Command(app, "--mode", "mmap-provider", "--signal", signal,
		"--count", itoa(count), "--warmup", "0", "--file", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	return path
}

func itoa(n int) string { return strconv.Itoa(n) }

// batches reads a copy of path with the layout asked for and returns its
// batches of sig (copied out of library memory).
func batches(b *testing.B, path string, sig ffi.Signal, flatLayout bool) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	cp := filepath.Join(b.TempDir(), "copy.otlp")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		b.Fatal(err)
	}
	opts := ffi.DefaultOptions()
	opts.Flat = flatLayout
	r, err := ffitest.OpenReader(cp, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	var out [][]byte
	for range 100 {
		batch, ok, err := r.Poll(sig, now)
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			break
		}
		out = append(out, append([]byte(nil), batch.Data...))
		if err := r.Commit(sig, batch.Token); err != nil {
			b.Fatal(err)
		}
	}
	if len(out) < 2 {
		b.Fatalf("%d batches", len(out))
	}
	return out
}

func BenchmarkHandoffSpans(b *testing.B) {
	path := benchAppFile(b, "spans", 3*handoffBatch)
	otlp := batches(b, path, ffi.Traces, false)
	flatBatches := batches(b, path, ffi.Traces, true)
	b.Run("a-otlp", func(b *testing.B) {
		var um ptrace.ProtoUnmarshaler
		b.SetBytes(int64(len(otlp[1])))
		for b.Loop() {
			td, err := um.UnmarshalTraces(otlp[1])
			if err != nil || td.SpanCount() != handoffBatch {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/span")
	})
	b.Run("b-flat", func(b *testing.B) {
		var d flat.Decoder
		if _, err := d.Traces(flatBatches[0]); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(flatBatches[1])))
		for b.Loop() {
			td, err := d.Traces(flatBatches[1])
			if err != nil || td.SpanCount() != handoffBatch {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/span")
	})
}

func BenchmarkHandoffLogs(b *testing.B) {
	path := benchAppFile(b, "logs", 3*handoffBatch)
	otlp := batches(b, path, ffi.Logs, false)
	flatBatches := batches(b, path, ffi.Logs, true)
	b.Run("a-otlp", func(b *testing.B) {
		var um plog.ProtoUnmarshaler
		b.SetBytes(int64(len(otlp[1])))
		for b.Loop() {
			ld, err := um.UnmarshalLogs(otlp[1])
			if err != nil || ld.LogRecordCount() != handoffBatch {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/record")
	})
	b.Run("b-flat", func(b *testing.B) {
		var d flat.Decoder
		if _, err := d.Logs(flatBatches[0]); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(flatBatches[1])))
		for b.Loop() {
			ld, err := d.Logs(flatBatches[1])
			if err != nil || ld.LogRecordCount() != handoffBatch {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*handoffBatch), "ns/record")
	})
}
