package flat_test

// The flat hand-off gives exactly the pdata the OTLP hand-off gives: the
// same files are read twice, by a reader handing out OTLP requests
// (decoded with pdata's ProtoUnmarshaler) and by one handing out flat
// batches (decoded by flat.Decoder), polled and committed in the same
// order with the same clock; every batch must decode to the same pdata
// (compared by its OTLP encoding, which pdata writes deterministically).

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

// The fuzz corpora of the collector and core crates: files our writer made
// (spans with updates, renames, links; logs with every kind of value, value
// refs, kvlists and arrays; wrapped rings) and hostile ones. They live in the
// repository, outside this module: `make test-go` names their directories in
// OTLP_MMAP_CORPORA (a filepath.ListSeparator-separated list).
func corpusFiles(t *testing.T) []string {
	dirs := os.Getenv("OTLP_MMAP_CORPORA")
	if dirs == "" {
		t.Skip("OTLP_MMAP_CORPORA not set (make test-go sets it to the fuzz corpora)")
	}
	var files []string
	for _, dir := range filepath.SplitList(dirs) {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	require.NotEmpty(t, files)
	return files
}

// copyFile copies src to a new file in dir.
func copyFile(t *testing.T, src, dir, name string) string {
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	dst := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(dst, data, 0o600))
	return dst
}

// pair is the same file read both ways.
type pair struct {
	otlp, flat *ffi.Reader
	dec        [2]flat.Decoder
	batches    [2]int
	items      [2]uint64
	// flatBatches counts the batches in the flat layout (the others fell
	// back to OTLP).
	flatBatches [2]int
}

func openPair(t *testing.T, src string, opts ffi.Options) *pair {
	dir := t.TempDir()
	a := copyFile(t, src, dir, "a.otlp")
	b := copyFile(t, src, dir, "b.otlp")
	ro, erro := ffitest.OpenReader(a, opts)
	opts.Flat = true
	rf, errf := ffitest.OpenReader(b, opts)
	require.Equal(t, erro == nil, errf == nil, "open: %v / %v", erro, errf)
	if erro != nil {
		return nil
	}
	t.Cleanup(func() {
		_ = ro.Close()
		_ = rf.Close()
	})
	return &pair{otlp: ro, flat: rf}
}

func tracesBytes(t *testing.T, td ptrace.Traces) []byte {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	return b
}

func logsBytes(t *testing.T, ld plog.Logs) []byte {
	b, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	return b
}

// step polls sig on both readers, compares what they hand out, and
// commits. The flat batch is decoded twice (as a batch the pipeline
// refused is delivered again). Returns whether a batch came.
func (p *pair) step(t *testing.T, sig ffi.Signal, now time.Time) bool {
	a, okA, errA := p.otlp.Poll(sig, now)
	b, okB, errB := p.flat.Poll(sig, now)
	require.Equal(t, errA == nil, errB == nil, "poll %v: %v / %v", sig, errA, errB)
	require.Equal(t, okA, okB, "poll %v", sig)
	require.Equal(t, a.RecordsConsumed, b.RecordsConsumed)
	if !okA {
		return false
	}
	require.Equal(t, a.Items, b.Items)
	p.items[sig] += a.Items
	if b.Data[4] == 0 {
		p.flatBatches[sig]++
	}
	dec := &p.dec[sig]
	for range 2 {
		switch sig {
		case ffi.Traces:
			want, werr := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(a.Data)
			got, gerr := dec.Traces(b.Data)
			require.Equal(t, werr == nil, gerr == nil, "decode: %v / %v", werr, gerr)
			if werr == nil {
				require.Equal(t, tracesBytes(t, want), tracesBytes(t, got), "traces batch %d", p.batches[sig])
			}
		case ffi.Logs:
			want, werr := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(a.Data)
			got, gerr := dec.Logs(b.Data)
			require.Equal(t, werr == nil, gerr == nil, "decode: %v / %v", werr, gerr)
			if werr == nil {
				require.Equal(t, logsBytes(t, want), logsBytes(t, got), "logs batch %d", p.batches[sig])
			}
		}
		// Polling again before the commit hands out the same batch.
		b, okB, errB = p.flat.Poll(sig, now)
		require.NoError(t, errB)
		require.True(t, okB)
	}
	p.batches[sig]++
	require.NoError(t, p.otlp.Commit(sig, a.Token))
	require.NoError(t, p.flat.Commit(sig, b.Token))
	return true
}

// drive reads both copies to the end, spans still open given up at the end.
func (p *pair) drive(t *testing.T) {
	now := time.Unix(1_700_000_100, 0)
	idle := 0
	for round := 0; idle < 2; round++ {
		require.Less(t, round, 100_000, "no end")
		moved := false
		for _, sig := range []ffi.Signal{ffi.Traces, ffi.Logs} {
			for p.step(t, sig, now) {
				moved = true
			}
		}
		if moved {
			idle = 0
		} else {
			idle++
			require.NoError(t, p.otlp.AbandonSpans(now))
			require.NoError(t, p.flat.AbandonSpans(now))
		}
		now = now.Add(time.Second)
	}
}

func TestFlatEqualsOTLPOnTheCorpus(t *testing.T) {
	small := ffi.DefaultOptions()
	small.MaxBatchSpans, small.MaxBatchLogs, small.MaxInFlightSpans = 3, 3, 4
	for _, file := range corpusFiles(t) {
		for name, opts := range map[string]ffi.Options{"defaults": ffi.DefaultOptions(), "small": small} {
			t.Run(filepath.Base(file)+"/"+name, func(t *testing.T) {
				p := openPair(t, file, opts)
				if p == nil {
					return
				}
				p.drive(t)
				t.Logf("traces: %d spans in %d batches (%d flat); logs: %d records in %d batches (%d flat); %d + %d strings",
					p.items[ffi.Traces], p.batches[ffi.Traces], p.flatBatches[ffi.Traces],
					p.items[ffi.Logs], p.batches[ffi.Logs], p.flatBatches[ffi.Logs],
					p.dec[ffi.Traces].Strings(), p.dec[ffi.Logs].Strings())
			})
		}
	}
}

// openWritten opens two files written with the same calls, each read one way.
func openWritten(t *testing.T, opts ffi.Options, ringSlots uint32) (*pair, [2]*ffitest.Writer) {
	dir := t.TempDir()
	var ws [2]*ffitest.Writer
	var rs [2]*ffi.Reader
	for i, name := range []string{"a.otlp", "b.otlp"} {
		path := filepath.Join(dir, name)
		w, err := ffitest.CreateWriter(path, ringSlots, 512)
		require.NoError(t, err)
		o := opts
		o.Flat = i == 1
		r, err := ffitest.OpenReader(path, o)
		require.NoError(t, err)
		ws[i], rs[i] = w, r
	}
	t.Cleanup(func() {
		for i := range 2 {
			_ = rs[i].Close()
			_ = ws[i].Close()
		}
	})
	return &pair{otlp: rs[0], flat: rs[1]}, ws
}

// The library's flat batches decode to what its OTLP batches hold, on every
// run (without the corpora or the long test): a change of the layout on
// one side only fails here.
func TestLibraryFlatBatchesDecodeAsItsOTLP(t *testing.T) {
	opts := ffi.DefaultOptions()
	opts.MaxBatchSpans, opts.MaxBatchLogs = 4, 4
	p, ws := openWritten(t, opts, 256)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 10 {
		start := t0.Add(time.Duration(i) * time.Millisecond)
		for _, w := range ws {
			require.NoError(t, w.Span([16]byte{1, byte(i)}, [8]byte{2, byte(i)}, "op", "k", fmt.Sprint("v", i%3), start, start.Add(time.Millisecond)))
			require.NoError(t, w.Log(fmt.Sprint("body ", i), "k", "v", start))
		}
	}
	p.drive(t)
	require.Equal(t, [2]uint64{10, 10}, [2]uint64{p.items[ffi.Traces], p.items[ffi.Logs]})
	require.Equal(t, [2]int{3, 3}, [2]int{p.batches[ffi.Traces], p.batches[ffi.Logs]})
	require.Equal(t, p.batches, p.flatBatches, "every batch flat")
}

// Many batches of one file: the string table grows across batches (names,
// keys and values that repeat are sent once), values that never repeat go
// inline, and the table starts over once past its bounds (32,768 entries:
// every span here has a key of its own), on both sides in step.
func TestFlatEqualsOTLPAcrossManyBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 36,000 spans")
	}
	opts := ffi.DefaultOptions()
	opts.MaxBatchSpans, opts.MaxBatchLogs = 500, 500
	p, ws := openWritten(t, opts, 1<<14)
	t0 := time.Unix(1_700_000_000, 0)
	names := []string{"GET /items", "POST /items", "GET /users/{id}"}
	const rounds, perRound = 9, 4000
	n := 0
	for round := range rounds {
		for i := range perRound {
			n++
			tid := [16]byte{1, byte(n), byte(n >> 8), byte(n >> 16)}
			sid := [8]byte{2, byte(n), byte(n >> 8), byte(n >> 16)}
			key := fmt.Sprintf("key.%d", n)
			value := []string{"repeated", fmt.Sprintf("unique-%d", n)}[i%2]
			start := t0.Add(time.Duration(n) * time.Millisecond)
			for _, w := range ws {
				require.NoError(t, w.Span(tid, sid, names[n%len(names)], key, value, start, start.Add(time.Millisecond)))
				require.NoError(t, w.Log(value, "item.kind", names[i%len(names)], start))
			}
		}
		p.drive(t)
		require.Equal(t, uint64((round+1)*perRound), p.items[ffi.Traces])
		require.Equal(t, uint64((round+1)*perRound), p.items[ffi.Logs])
	}
	require.Equal(t, p.batches, p.flatBatches, "every batch flat")
	require.Equal(t, uint32(1), p.dec[ffi.Traces].Epoch(), "the traces table started over once")
	require.Equal(t, uint32(0), p.dec[ffi.Logs].Epoch())
	// Log values: "repeated" and the names are interned, the unique ones are not.
	require.Less(t, p.dec[ffi.Logs].Strings(), 20)
}
