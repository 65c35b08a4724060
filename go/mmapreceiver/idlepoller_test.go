package mmapreceiver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// An idle file is left to the idle poller: the watcher's rounds that find
// nothing written do not wake it, and a record written to it is delivered
// once the watcher wakes it, although the file's own deadline
// (scan_interval, here an hour) is far away.
func TestIdleFileIsWokenByTheIdlePoller(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	cfg := testConfig(dir)
	cfg.ScanInterval = time.Hour
	cfg.Metrics.CollectionInterval = time.Hour

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	sink := new(consumertest.LogsSink)
	r.setLogs(sink)
	r.setTraces(new(consumertest.TracesSink))
	r.setMetrics(new(consumertest.MetricsSink))
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	parked := func() bool { return r.poller.parked.Load() == 1 }
	for i := range 3 {
		require.Eventually(t, parked, waitFor, time.Millisecond, "the idle file parks")
		wakes := r.poller.wakes.Load()
		// Rounds of the watcher (every millisecond) with nothing written
		// leave the file parked.
		time.Sleep(20 * time.Millisecond)
		require.True(t, parked())
		require.Equal(t, wakes, r.poller.wakes.Load(), "the watcher woke a file that had nothing to read")

		require.NoError(t, tw.log(nextID("idle")))
		require.Eventually(t, func() bool { return sink.LogRecordCount() == i+1 }, waitFor, time.Millisecond)
		assert.Equal(t, wakes+1, r.poller.wakes.Load(), "one wake-up per record written")
	}
}

// A parked file whose writer goes away is woken once by the scan (so that the
// reader gives up its spans in flight), and not again at later scans.
func TestParkedFileIsWokenOnceWhenItsWriterGoesAway(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	cfg := testConfig(dir) // scan_interval 20ms
	cfg.Metrics.CollectionInterval = time.Hour
	cfg.DeleteAfterDrain = false // the file stays, and parks again

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	r.setTraces(new(consumertest.TracesSink))
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	parked := func() bool { return r.poller.parked.Load() == 1 }
	require.Eventually(t, parked, waitFor, time.Millisecond, "the idle file parks")
	wakes := r.poller.wakes.Load()
	tw.close()
	require.Eventually(t, func() bool { return r.poller.wakes.Load() == wakes+1 }, waitFor, time.Millisecond,
		"the scan wakes the file of a writer that went away")
	require.Eventually(t, parked, waitFor, time.Millisecond, "it parks again")
	time.Sleep(5 * cfg.ScanInterval) // later scans
	assert.Equal(t, wakes+1, r.poller.wakes.Load(), "woken once, not at every scan")
}

// Measurements only change aggregates until the next collection: once they
// flow, a file whose other signals are idle parks until a quarter of its
// measurements ring was written (or the collection is due), and reads them
// in one poll. Every measurement is in the collection.
func TestMeasurementsGatherInTheRingUntilABatchIsThere(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	cfg := testConfig(dir) // poll_interval (the watcher's rounds) 1ms
	cfg.ScanInterval = time.Hour
	cfg.Metrics.CollectionInterval = time.Hour

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	ms := new(consumertest.MetricsSink)
	r.setMetrics(ms)
	r.setTraces(new(consumertest.TracesSink))
	r.setLogs(new(consumertest.LogsSink))
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	stopped := false
	defer func() {
		if !stopped {
			require.NoError(t, r.Shutdown(context.Background()))
		}
	}()

	require.Eventually(t, func() bool { return r.poller.parked.Load() == 1 }, waitFor, time.Millisecond, "the idle file parks")
	id := nextID("batch")
	wokenAndParked := func(wakes, parks uint64) func() bool {
		return func() bool {
			return r.poller.wakes.Load() == wakes+1 && r.poller.parks.Load() == parks+1 && r.poller.parked.Load() == 1
		}
	}
	// The first measurement wakes the idle file, which parks again.
	wakes, parks := r.poller.wakes.Load(), r.poller.parks.Load()
	require.NoError(t, tw.count(id, 1))
	require.Eventually(t, wokenAndParked(wakes, parks), waitFor, time.Millisecond, "woken by the first measurement")

	batch := testRingSlots / 4
	for range 2 {
		wakes, parks = r.poller.wakes.Load(), r.poller.parks.Load()
		for range batch - 1 {
			require.NoError(t, tw.count(id, 1))
		}
		time.Sleep(20 * time.Millisecond) // rounds of the watcher
		require.Equal(t, wakes, r.poller.wakes.Load(), "woken before a quarter of the ring was written")
		require.NoError(t, tw.count(id, 1))
		require.Eventually(t, wokenAndParked(wakes, parks), waitFor, time.Millisecond, "woken by a quarter of the ring")
	}
	assert.Zero(t, ms.DataPointCount(), "collected before collection_interval")

	stopped = true
	require.NoError(t, r.Shutdown(context.Background()))
	c := newCollected()
	c.addMetrics(ms.AllMetrics())
	assert.Equal(t, map[string]int64{id: int64(1 + 2*batch)}, c.sums)
}

// While continuous traffic waits for its batch to fill (flush_timeout), the
// file is parked with the watcher, which wakes it once a quarter of the ring
// was written: a burst is read before the ring fills, however long the wait.
func TestABurstDuringAFillWaitIsReadBeforeTheRingFills(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	cfg := testConfig(dir)
	cfg.PollInterval = 5 * time.Millisecond
	cfg.FlushTimeout = time.Hour // only a full batch or a quarter of the ring ends a wait
	cfg.ScanInterval = time.Hour
	cfg.Metrics.CollectionInterval = time.Hour

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	ls := new(consumertest.LogsSink)
	r.setLogs(ls)
	r.setTraces(new(consumertest.TracesSink))
	r.setMetrics(new(consumertest.MetricsSink))
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	// Slow continuous traffic: every poll finds a partial batch.
	sent := 0
	for range 40 {
		require.NoError(t, tw.log(nextID("slow")))
		sent++
		time.Sleep(5 * time.Millisecond)
	}
	require.Eventually(t, func() bool { return ls.LogRecordCount() == sent }, waitFor, time.Millisecond)
	parks := r.poller.parks.Load()
	require.Positive(t, parks, "waiting for a batch, the file parks")

	// A burst of three rings, written without retrying: a record that finds
	// the ring full is dropped.
	dropped := 0
	for i := range 3 * testRingSlots {
		tw.mu.Lock()
		err := tw.w.Log("burst", idKey, nextID("burst"), time.Now())
		tw.mu.Unlock()
		if ffi.Code(err) == ffi.StatusErrFull {
			dropped++
		} else {
			require.NoError(t, err)
			sent++
		}
		if i%16 == 15 {
			time.Sleep(time.Millisecond)
		}
	}
	assert.Zero(t, dropped, "records that found the ring full")
	require.Eventually(t, func() bool { return ls.LogRecordCount() == sent }, waitFor, time.Millisecond)
}

// Measurements that gather in the ring of a parked file are read by the
// collection itself: that collection counts them as collected, so the final
// collection at shutdown, with nothing new since, does not send the same
// values again (a stale count did, and broke the consume contract).
func TestMeasurementsReadByACollectionAreNotCollectedAgain(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	cfg := testConfig(dir)
	cfg.ScanInterval = time.Hour
	cfg.Metrics.CollectionInterval = time.Second

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	ms := new(consumertest.MetricsSink)
	r.setMetrics(ms)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	stopped := false
	defer func() {
		if !stopped {
			require.NoError(t, r.Shutdown(context.Background()))
		}
	}()

	parked := func() bool { return r.poller.parked.Load() == 1 }
	require.Eventually(t, parked, waitFor, time.Millisecond, "the idle file parks")
	// The first measurement wakes the file, which reads it and parks again.
	wakes, parks := r.poller.wakes.Load(), r.poller.parks.Load()
	require.NoError(t, tw.count(nextID("first"), 1))
	require.Eventually(t, func() bool {
		return r.poller.wakes.Load() == wakes+1 && r.poller.parks.Load() == parks+1 && parked()
	}, waitFor, time.Millisecond, "woken by the first measurement")
	// Far fewer than a quarter of the ring: they stay in it until the collection.
	wakes = r.poller.wakes.Load()
	for range 10 {
		require.NoError(t, tw.count(nextID("later"), 1))
	}
	time.Sleep(20 * time.Millisecond) // rounds of the watcher
	require.Equal(t, wakes, r.poller.wakes.Load(), "the measurements wait in the ring for the collection")
	require.Zero(t, ms.DataPointCount(), "collected before collection_interval")
	require.Eventually(t, func() bool { return len(ms.AllMetrics()) == 1 }, waitFor, time.Millisecond, "collected")
	c := newCollected()
	c.addMetrics(ms.AllMetrics())
	require.Len(t, c.sums, 11, "the collection holds every measurement")

	stopped = true
	require.NoError(t, r.Shutdown(context.Background()))
	assert.Len(t, ms.AllMetrics(), 1, "nothing came after the collection: shutdown collects nothing again")
}
