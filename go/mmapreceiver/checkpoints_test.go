package mmapreceiver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// memoryStorage is a storage extension that keeps its data in memory, for
// as long as the test: receivers started one after the other share it as
// Collectors restarted on one file_storage directory would.
type memoryStorage struct {
	component.StartFunc
	component.ShutdownFunc
	mu   sync.Mutex
	data map[string][]byte
	// failSet, when set, makes Set of the keys it names fail.
	failSet func(key string) bool
	// beforeSet, when set, runs before each Set (without the lock).
	beforeSet func(key string)
}

func (m *memoryStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return memoryClient{m}, nil
}

type memoryClient struct{ m *memoryStorage }

func (c memoryClient) Get(_ context.Context, key string) ([]byte, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return c.m.data[key], nil
}

func (c memoryClient) Set(_ context.Context, key string, value []byte) error {
	c.m.mu.Lock()
	before := c.m.beforeSet
	c.m.mu.Unlock()
	if before != nil {
		before(key)
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if c.m.failSet != nil && c.m.failSet(key) {
		return errors.New("storage refused the write")
	}
	c.m.data[key] = append([]byte(nil), value...)
	return nil
}

func (c memoryClient) Delete(_ context.Context, key string) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	delete(c.m.data, key)
	return nil
}

func (c memoryClient) Batch(ctx context.Context, ops ...*storage.Operation) error {
	for _, op := range ops {
		var err error
		switch op.Type {
		case storage.Get:
			op.Value, err = c.Get(ctx, op.Key)
		case storage.Set:
			err = c.Set(ctx, op.Key, op.Value)
		case storage.Delete:
			err = c.Delete(ctx, op.Key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (memoryClient) Close(context.Context) error { return nil }

type storageHost struct {
	extensions map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.extensions }

var storageID = component.MustNewID("memory_storage")

func TestCorruptCheckpointIsIgnoredWithALogLine(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	id := nextID("cp")
	require.NoError(t, tw.log(id))
	store := &memoryStorage{data: map[string][]byte{checkpointKey(tw.path): []byte("\xff\xfe not a checkpoint")}}

	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	core, logs := observer.New(zapcore.InfoLevel)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	ls := new(consumertest.LogsSink)
	r, err := NewFactory().CreateLogs(context.Background(), set, cfg, ls)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })

	// The file is read all the same.
	require.Eventually(t, func() bool { return ls.LogRecordCount() == 1 }, waitFor, time.Millisecond)
	ignored := logs.FilterMessage("Ignoring the checkpoint of a file").All()
	require.Len(t, ignored, 1)
	assert.Contains(t, ignored[0].ContextMap()["reason"], "corrupt")
	assert.Equal(t, int64(1), sumOf(t, tel, "otelcol_receiver_mmap_checkpoints_ignored"))
	store.mu.Lock()
	defer store.mu.Unlock()
	// In its place: the file's first checkpoint, of its state as opened.
	assert.NotEqual(t, "\xff\xfe not a checkpoint", string(store.data[checkpointKey(tw.path)]), "an ignored checkpoint is replaced")
}

func TestStorageExtensionMustExist(t *testing.T) {
	cfg := testConfig(t.TempDir())
	missing := component.MustNewID("file_storage")
	cfg.StorageID = &missing
	r, err := NewFactory().CreateLogs(context.Background(), nopSettings(), cfg, new(consumertest.LogsSink))
	require.NoError(t, err)
	err = r.Start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, `storage: no extension "file_storage"`)
	require.NoError(t, r.Shutdown(context.Background()))
}

// lastPoint is the latest data point of the series test_id=id of testMetric.
func lastPoint(ms *consumertest.MetricsSink, id string) (value int64, start pcommon.Timestamp, ok bool) {
	for _, md := range ms.AllMetrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				metrics := sms.At(j).Metrics()
				for k := 0; k < metrics.Len(); k++ {
					m := metrics.At(k)
					if m.Name() != testMetric || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					dps := m.Sum().DataPoints()
					for l := 0; l < dps.Len(); l++ {
						if got, _ := idOf(dps.At(l).Attributes()); got == id {
							value, start, ok = dps.At(l).IntValue(), dps.At(l).StartTimestamp(), true
						}
					}
				}
			}
		}
	}
	return value, start, ok
}

func TestCumulativeSumGoesOnAcrossARestartWithStorage(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	id := nextID("cum")
	require.NoError(t, tw.count(id, 5))
	store := &memoryStorage{data: map[string][]byte{}}
	host := storageHost{map[component.ID]component.Component{storageID: store}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	run := func() (*consumertest.MetricsSink, func() error) {
		ms := new(consumertest.MetricsSink)
		r, err := NewFactory().CreateMetrics(context.Background(), nopSettings(), cfg, ms)
		require.NoError(t, err)
		require.NoError(t, r.Start(context.Background(), host))
		return ms, func() error { return r.Shutdown(context.Background()) }
	}

	first, stop := run()
	require.Eventually(t, func() bool { v, _, _ := lastPoint(first, id); return v == 5 }, waitFor, time.Millisecond)
	_, start, _ := lastPoint(first, id)
	require.NoError(t, stop())
	store.mu.Lock()
	require.Contains(t, store.data, checkpointKey(tw.path), "the stop stored a checkpoint")
	store.mu.Unlock()

	require.NoError(t, tw.count(id, 7))
	second, stop := run()
	t.Cleanup(func() { _ = stop() })
	require.Eventually(t, func() bool { v, _, _ := lastPoint(second, id); return v == 12 }, waitFor, time.Millisecond)
	_, start2, _ := lastPoint(second, id)
	assert.Equal(t, start, start2, "the series keeps its start time")
}

func TestDeletedFileLeavesNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	id := nextID("del")
	require.NoError(t, tw.count(id, 3))
	store := &memoryStorage{data: map[string][]byte{}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.CheckpointInterval = 10 * time.Millisecond
	ms := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), nopSettings(), cfg, ms)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	has := func(key string) bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		_, ok := store.data[key]
		return ok
	}
	stored := func() bool { return has(checkpointKey(tw.path)) }
	require.Eventually(t, stored, waitFor, time.Millisecond, "a periodic checkpoint")
	require.Eventually(t, func() bool { return has(markerKey(tw.path)) }, waitFor, time.Millisecond,
		"a delivery marker after the metrics batch")
	tw.close()
	require.Eventually(t, func() bool {
		_, err := os.Stat(tw.path)
		return os.IsNotExist(err) && !stored() && !has(markerKey(tw.path))
	}, waitFor, time.Millisecond, "the file, its checkpoint and its marker go")
	v, _, ok := lastPoint(ms, id)
	require.True(t, ok)
	assert.Equal(t, int64(3), v)
}

// A file that parks (idle) with a checkpoint owed - records read since the
// last one, held in their ring until one is stored - is woken for it at
// checkpoint_interval, not only at its other deadlines (here a minute or
// more away).
func TestParkedFileIsCheckpointed(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	store := &memoryStorage{data: map[string][]byte{}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.CheckpointInterval = 2 * time.Second
	cfg.Traces.MaxSpanAge = time.Hour

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	sink := new(consumertest.TracesSink)
	r.setTraces(sink)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })

	require.NoError(t, tw.span(nextID("parked")))
	require.Eventually(t, func() bool { return sink.SpanCount() == 1 }, waitFor, time.Millisecond)
	require.Eventually(t, func() bool { return r.poller.parked.Load() == 1 }, waitFor, time.Millisecond, "the idle file parks")
	require.Eventually(t, func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		_, ok := store.data[checkpointKey(tw.path)]
		return ok
	}, waitFor, time.Millisecond, "the parked file is checkpointed")
	require.Eventually(t, func() bool { return r.poller.parked.Load() == 1 }, waitFor, time.Millisecond, "and parks again")
}

// A parked file whose writer goes away is drained, its checkpoint stored
// and then forgotten, and the file deleted (delete_after_drain), although
// nothing wakes it but the scan.
func TestParkedFileOfAWriterGoneIsDeleted(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	store := &memoryStorage{data: map[string][]byte{}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.CheckpointInterval = 10 * time.Millisecond
	cfg.Traces.MaxSpanAge = time.Hour

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	sink := new(consumertest.TracesSink)
	r.setTraces(sink)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })

	require.NoError(t, tw.span(nextID("gone")))
	require.Eventually(t, func() bool { return sink.SpanCount() == 1 }, waitFor, time.Millisecond)
	key := checkpointKey(tw.path)
	stored := func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		_, ok := store.data[key]
		return ok
	}
	require.Eventually(t, func() bool { return stored() && r.poller.parked.Load() == 1 }, waitFor, time.Millisecond,
		"checkpointed and parked")
	tw.close()
	require.Eventually(t, func() bool {
		_, err := os.Stat(tw.path)
		return os.IsNotExist(err) && !stored()
	}, waitFor, time.Millisecond, "the file and its checkpoint go")
	assert.Equal(t, 1, sink.SpanCount())
	assert.Equal(t, int64(0), r.poller.parked.Load())
}

// A delivery marker that cannot be stored is worth a warning (a crash would
// duplicate more than one batch), logged once while the failures go on.
func TestFailedDeliveryMarkerStoreWarnsOnce(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	store := &memoryStorage{data: map[string][]byte{}, failSet: func(key string) bool { return key == markerKey(tw.path) }}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	core, logs := observer.New(zapcore.InfoLevel)
	set := nopSettings()
	set.Logger = zap.New(core)
	ts := new(consumertest.TracesSink)
	r, err := NewFactory().CreateTraces(context.Background(), set, cfg, ts)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	for range 3 {
		before := len(ts.AllTraces())
		require.NoError(t, tw.span(nextID("marker")))
		require.Eventually(t, func() bool { return len(ts.AllTraces()) > before }, waitFor, time.Millisecond)
	}
	warned := logs.FilterMessage("Cannot store the delivery marker of a file; a crash would emit again what was delivered since the checkpoint").All()
	require.Len(t, warned, 1)
	assert.Equal(t, zapcore.WarnLevel, warned[0].Level)
}

// A writer that starts over in place leaves what its old stream still has
// to deliver in the reader's memory only (its rings were reset): a
// checkpoint is stored right away, not at the next checkpoint_interval,
// although no record was read since.
func TestAWriterRestartInPlaceIsCheckpointedAtOnce(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	store := &memoryStorage{data: map[string][]byte{}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.CheckpointInterval = time.Hour

	r, err := newMmapReceiver(nopSettings(), cfg)
	require.NoError(t, err)
	sink := new(consumertest.TracesSink)
	r.setTraces(sink)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	require.NoError(t, tw.span(nextID("before")))
	require.Eventually(t, func() bool { return sink.SpanCount() == 1 }, waitFor, time.Millisecond)
	stored := func() []byte {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.data[checkpointKey(tw.path)]
	}
	before := stored()
	require.Eventually(t, func() bool { return r.poller.parked.Load() == 1 }, waitFor, time.Millisecond, "the idle file parks")

	// The writer starts over in place: a new writer's bytes (another start
	// time, empty rings, its own dictionary) over the same file.
	fresh := newTestWriter(t, filepath.Join(t.TempDir(), "fresh.otlp"))
	bytes, err := os.ReadFile(fresh.path)
	require.NoError(t, err)
	f, err := os.OpenFile(tw.path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(bytes, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	require.Eventually(t, func() bool {
		after := stored()
		return after != nil && string(after) != string(before)
	}, waitFor, time.Millisecond, "a checkpoint of the new stream is stored at once")
}

// A Collector that crashes before a file's first checkpoint_interval
// emits again, after its restart, nothing it had delivered: a file opened
// without a checkpoint gets one at once, of its state as opened, and the
// delivery markers stored after each batch count from it. (Before, the
// markers had no checkpoint to apply to, and the restarted reader read the
// rings again from where the first one had opened them.)
func TestACrashBeforeTheFirstCheckpointEmitsNothingDeliveredAgain(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.CheckpointInterval = time.Hour
	start := func(store *memoryStorage) (*consumertest.TracesSink, *mmapReceiver) {
		r, err := newMmapReceiver(nopSettings(), cfg)
		require.NoError(t, err)
		sink := new(consumertest.TracesSink)
		r.setTraces(sink)
		require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
		return sink, r
	}
	// Written before the reader starts: one batch, so that the marker stored
	// after it counts all three.
	for range 3 {
		require.NoError(t, tw.span(nextID("delivered")))
	}
	first := &memoryStorage{data: map[string][]byte{}}
	sink, r := start(first)
	require.Eventually(t, func() bool { return sink.SpanCount() == 3 }, waitFor, time.Millisecond)
	marker := func() []byte {
		first.mu.Lock()
		defer first.mu.Unlock()
		return first.data[markerKey(tw.path)]
	}
	require.Eventually(t, func() bool { return marker() != nil }, waitFor, time.Millisecond, "the delivery is marked")

	// The crash: what storage holds now is all the next Collector gets. The
	// first one then stores nothing more (its storage refuses), so
	// that it gives nothing back to the writer either, as a killed one.
	first.mu.Lock()
	crashed := &memoryStorage{data: map[string][]byte{}}
	for k, v := range first.data {
		crashed.data[k] = append([]byte(nil), v...)
	}
	first.failSet = func(string) bool { return true }
	first.mu.Unlock()
	require.Contains(t, crashed.data, checkpointKey(tw.path), "the file's first checkpoint, stored when it was opened")
	require.NoError(t, r.Shutdown(context.Background()))

	restarted, r := start(crashed)
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	after := nextID("after")
	require.NoError(t, tw.span(after))
	// Spans are emitted in the order they complete: delivered spans emitted
	// again would come before (or with) this one.
	require.Eventually(t, func() bool { return restarted.SpanCount() >= 1 }, waitFor, time.Millisecond)
	names := map[string]int{}
	for _, td := range restarted.AllTraces() {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			ss := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				for k := 0; k < ss.At(j).Spans().Len(); k++ {
					names[ss.At(j).Spans().At(k).Name()]++
				}
			}
		}
	}
	assert.Equal(t, map[string]int{"span " + after: 1}, names, "only the span written after the crash")
}

// A file replaced at its path while its reader is storing a checkpoint: the
// scan that sees the replacement waits for that write before it forgets the
// path's state, so the old file's checkpoint never lands over the new
// file's first one (it would be ignored at the next start, and what the new
// file delivered since its opening sent again).
func TestAReplacedFilesLastCheckpointDoesNotLandOverTheNewFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.otlp")
	tw := newTestWriter(t, path)
	store := &memoryStorage{data: map[string][]byte{}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.CheckpointInterval = 5 * time.Millisecond
	core, logs := observer.New(zapcore.InfoLevel)
	set := nopSettings()
	set.Logger = zap.New(core)
	r, err := newMmapReceiver(set, cfg)
	require.NoError(t, err)
	sink := new(consumertest.TracesSink)
	r.setTraces(sink)
	require.NoError(t, r.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: store}}))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	require.Eventually(t, func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.data[checkpointKey(path)] != nil
	}, waitFor, time.Millisecond, "the file's first checkpoint")

	// The next checkpoint write of the old file is held until released.
	var (
		held     = make(chan struct{})
		release  = make(chan struct{})
		once     sync.Once
		mu       sync.Mutex
		laterSet int
	)
	store.mu.Lock()
	store.beforeSet = func(key string) {
		if key != checkpointKey(path) {
			return
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(held)
			<-release
			return
		}
		mu.Lock()
		laterSet++
		mu.Unlock()
	}
	store.mu.Unlock()
	require.NoError(t, tw.span(nextID("old")))
	select {
	case <-held:
	case <-time.After(waitFor):
		t.Fatal("no checkpoint of the old file was written")
	}

	// Replaced: another file at the path.
	fresh := newTestWriter(t, filepath.Join(t.TempDir(), "fresh.otlp"))
	require.NoError(t, os.Rename(fresh.path, path))
	// Before the fix the scan that saw it forgot the path at once and stored
	// the new file's first checkpoint while the old write was held. Now
	// that scan waits for the held write: once it saw the replacement, give
	// it the time to show either.
	require.Eventually(t, func() bool {
		return logs.FilterMessage("File no longer matches or was replaced; draining it").Len() > 0
	}, waitFor, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	storedMeanwhile := laterSet
	mu.Unlock()
	close(release)
	assert.Zero(t, storedMeanwhile, "nothing stored under the path while the old file's write was under way")

	// The new file's first checkpoint, stored after the old one.
	require.Eventually(t, func() bool {
		mu.Lock()
		later := laterSet
		mu.Unlock()
		store.mu.Lock()
		defer store.mu.Unlock()
		return later > 0 && store.data[checkpointKey(path)] != nil
	}, waitFor, time.Millisecond)
	// A Collector starting from what is stored now restores it.
	store.mu.Lock()
	snapshot := &memoryStorage{data: map[string][]byte{}}
	for k, v := range store.data {
		snapshot.data[k] = append([]byte(nil), v...)
	}
	store.mu.Unlock()
	require.NoError(t, r.Shutdown(context.Background()))
	core2, logs2 := observer.New(zapcore.InfoLevel)
	set2 := nopSettings()
	set2.Logger = zap.New(core2)
	r2, err := newMmapReceiver(set2, cfg)
	require.NoError(t, err)
	r2.setTraces(new(consumertest.TracesSink))
	require.NoError(t, r2.Start(context.Background(), storageHost{map[component.ID]component.Component{storageID: snapshot}}))
	t.Cleanup(func() { require.NoError(t, r2.Shutdown(context.Background())) })
	require.Eventually(t, func() bool {
		return logs2.FilterMessage("Restored the state of a file from its checkpoint").Len() == 1
	}, waitFor, time.Millisecond)
	assert.Zero(t, logs2.FilterMessage("Ignoring the checkpoint of a file").Len())
}
