package mmapreceiver

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-mmap/mmapreceiver/internal/access"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
)

// A file reader runs on what it is given, without a receiver: it delivers
// to its consumers, drains when asked, closes its file and says so.
func TestFileReaderRunsOnItsDependencies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.otlp")
	tw := newTestWriter(t, path)
	var ids []string
	for range 10 {
		id := nextID("fr")
		ids = append(ids, id)
		require.NoError(t, tw.span(id))
		require.NoError(t, tw.log(id))
	}
	opts := ffi.DefaultOptions()
	opts.Flat = true // as the receiver opens its readers
	rd, err := ffitest.OpenReader(path, opts)
	require.NoError(t, err)

	tel, err := newTelemetry(nopSettings())
	require.NoError(t, err)
	defer tel.shutdown()
	sink := new(consumertest.TracesSink)
	var closed atomic.Int32
	deps := readerDeps{
		logger:    zaptest.NewLogger(t),
		telemetry: tel,
		options: readerOptions{
			pollInterval:       time.Millisecond,
			collectionInterval: time.Hour,
			retryInitial:       time.Millisecond,
			retryMax:           time.Millisecond,
			batchSize:          [3]uint64{ffi.Traces: 4, ffi.Logs: 4},
		},
		finalOffer: func() (context.Context, time.Time) {
			return context.Background(), time.Now().Add(time.Second)
		},
		closed: func() { closed.Add(1) },
	}
	deps.consumers[ffi.Traces] = newTracesConsumer(sink, tel.obsrep)
	deps.poller, err = startIdlePoller(time.Millisecond)
	require.NoError(t, err)
	defer deps.poller.close()
	fr := newFileReader(deps, path, access.FileID{}, rd)
	assert.Equal(t, []ffi.Signal{ffi.Traces}, fr.signals, "only signals with a consumer are read")

	go fr.run(context.Background())
	require.Eventually(t, func() bool { return sink.SpanCount() == len(ids) }, waitFor, time.Millisecond)
	fr.requestDrain()
	select {
	case <-fr.done:
	case <-time.After(waitFor):
		t.Fatal("the reader did not finish draining")
	}
	assert.Equal(t, int32(1), closed.Load())
	s, ok := fr.refreshStats()
	assert.False(t, ok, "closed: %+v", s)

	// The logs ring was not touched: a new reader finds every record.
	rd2, err := ffitest.OpenReader(path, ffi.DefaultOptions())
	require.NoError(t, err)
	defer rd2.Close()
	b, ok, err := rd2.Poll(ffi.Logs, time.Now())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(len(ids)), b.Items)
}

func TestFillWaitWaitsForAFullBatchWithinItsBounds(t *testing.T) {
	const lo, hi = 15 * time.Millisecond, 50 * time.Millisecond
	ms := time.Millisecond
	ring := func(items, records uint64) fillRate {
		return fillRate{items: items, records: records, batchSize: 1024, ringCapacity: 8192}
	}
	tests := []struct {
		name    string
		elapsed time.Duration
		rate    fillRate
		want    time.Duration
	}{
		// 512 spans (1024 records) in 15 ms: a batch of 1024 fills in 30 ms.
		{"a batch fills within flush_timeout", 15 * ms, ring(512, 1024), 30 * ms},
		{"slow traffic waits flush_timeout", 15 * ms, ring(10, 20), hi},
		{"fast traffic is read every poll_interval", 15 * ms, ring(2000, 4000), lo},
		// 100 spans with 4096 records (events): a quarter of the ring (2048) fills in 25 ms.
		{"the ring would fill first", 50 * ms, ring(100, 4096), 25 * ms},
		{"records read without a batch", 15 * ms, ring(0, 300), hi},
		{"nothing read", 15 * ms, ring(0, 0), lo},
		{"the ring holds a quarter already", 15 * ms, fillRate{items: 1, records: 2, batchSize: 1024, ringCapacity: 8192, ringHeld: 2048}, lo},
		{"slots held shorten the wait", 15 * ms, fillRate{items: 10, records: 1024, batchSize: 1024, ringCapacity: 8192, ringHeld: 1024}, 15 * ms},
		{"held slots and no batch limit", 30 * ms, fillRate{items: 10, records: 512, ringCapacity: 8192, ringHeld: 1536}, 30 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, fillWaitFor(lo, hi, tt.elapsed, tt.rate))
		})
	}
	assert.Equal(t, lo, fillWaitFor(lo, lo, 15*ms, ring(10, 20)), "flush_timeout at poll_interval")
}
