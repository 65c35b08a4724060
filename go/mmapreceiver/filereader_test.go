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
