package mmapreceiver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
	"github.com/otelcol-mmap/mmapreceiver/internal/metadata"
)

const waitFor = 10 * time.Second

// pipelines are the next consumers of one receiver; nil ones are not
// configured.
type pipelines struct {
	traces  consumer.Traces
	metrics consumer.Metrics
	logs    consumer.Logs
}

// startReceiver creates the receivers of every configured pipeline under
// one component ID (so they share one instance, as in a collector), starts
// them and returns a function that shuts them down.
func startReceiver(t *testing.T, cfg *Config, set receiver.Settings, p pipelines) func() error {
	t.Helper()
	f := NewFactory()
	ctx := context.Background()
	var comps []component.Component
	if p.traces != nil {
		r, err := f.CreateTraces(ctx, set, cfg, p.traces)
		require.NoError(t, err)
		comps = append(comps, r)
	}
	if p.metrics != nil {
		r, err := f.CreateMetrics(ctx, set, cfg, p.metrics)
		require.NoError(t, err)
		comps = append(comps, r)
	}
	if p.logs != nil {
		r, err := f.CreateLogs(ctx, set, cfg, p.logs)
		require.NoError(t, err)
		comps = append(comps, r)
	}
	for _, c := range comps {
		require.NoError(t, c.Start(ctx, componenttest.NewNopHost()))
	}
	var once sync.Once
	var errs error
	stop := func() error {
		once.Do(func() {
			for _, c := range comps {
				errs = errors.Join(errs, c.Shutdown(ctx))
			}
		})
		return errs
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func nopSettings() receiver.Settings {
	return receivertest.NewNopSettings(metadata.Type)
}

// refuser makes a consumer refuse its first n calls.
type refuser struct {
	remaining atomic.Int64
	permanent bool
	refused   atomic.Int64
}

func (r *refuser) check() error {
	if r.remaining.Add(-1) < 0 {
		return nil
	}
	r.refused.Add(1)
	err := errors.New("not now")
	if r.permanent {
		return consumererror.NewPermanent(err)
	}
	return err
}

func refusingTraces(t *testing.T, n int64, sink *consumertest.TracesSink) (consumer.Traces, *refuser) {
	r := &refuser{}
	r.remaining.Store(n)
	c, err := consumer.NewTraces(func(ctx context.Context, td ptrace.Traces) error {
		if err := r.check(); err != nil {
			return err
		}
		return sink.ConsumeTraces(ctx, td)
	})
	require.NoError(t, err)
	return c, r
}

func refusingLogs(t *testing.T, n int64, sink *consumertest.LogsSink) (consumer.Logs, *refuser) {
	r := &refuser{}
	r.remaining.Store(n)
	c, err := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		if err := r.check(); err != nil {
			return err
		}
		return sink.ConsumeLogs(ctx, ld)
	})
	require.NoError(t, err)
	return c, r
}

func refusingMetrics(t *testing.T, n int64, sink *consumertest.MetricsSink) (consumer.Metrics, *refuser) {
	r := &refuser{}
	r.remaining.Store(n)
	c, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		if err := r.check(); err != nil {
			return err
		}
		return sink.ConsumeMetrics(ctx, md)
	})
	require.NoError(t, err)
	return c, r
}

// writeAll writes n spans, n logs and n counter series (series i gets
// i%4+1 measurements of 3) and returns the ids and expected sums.
func writeAll(t *testing.T, tw *testWriter, n int) (ids []string, sums map[string]int64) {
	t.Helper()
	sums = map[string]int64{}
	for range n {
		id := nextID("e2e")
		ids = append(ids, id)
		require.NoError(t, tw.span(id))
		require.NoError(t, tw.log(id))
		for range len(ids)%4 + 1 {
			require.NoError(t, tw.count(id, 3))
			sums[id] += 3
		}
	}
	return ids, sums
}

func TestEndToEndAllSignals(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	ids, sums := writeAll(t, tw, 300)

	ts, ls, ms := new(consumertest.TracesSink), new(consumertest.LogsSink), new(consumertest.MetricsSink)
	stop := startReceiver(t, testConfig(dir), nopSettings(), pipelines{traces: ts, metrics: ms, logs: ls})

	require.Eventually(t, func() bool {
		c := newCollected()
		c.addTraces(ts.AllTraces())
		c.addLogs(ls.AllLogs())
		c.addMetrics(ms.AllMetrics())
		return len(c.spans) == len(ids) && len(c.logs) == len(ids) && mapsEqual(c.sums, sums)
	}, waitFor, 5*time.Millisecond)
	require.NoError(t, stop())

	c := newCollected()
	c.addTraces(ts.AllTraces())
	c.addLogs(ls.AllLogs())
	c.addMetrics(ms.AllMetrics())
	assert.Empty(t, c.spanDups)
	assert.Empty(t, c.logDups)
	assert.Zero(t, c.missingIDs)
	for _, id := range ids {
		s := c.spans[id]
		assert.Equal(t, "span "+id, s.Name())
		assert.False(t, s.TraceID().IsEmpty())
		assert.False(t, s.SpanID().IsEmpty())
		assert.Less(t, s.StartTimestamp(), s.EndTimestamp())
		assert.Equal(t, "log "+id, c.logs[id].Body().AsString())
		assert.NotZero(t, c.logs[id].Timestamp())
	}
	assert.Equal(t, sums, c.sums)
	assert.Equal(t, len(ids), ts.SpanCount())
	assert.Equal(t, len(ids), ls.LogRecordCount())
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRetryUntilAccepted(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	ids, sums := writeAll(t, tw, 200)

	ts, ls, ms := new(consumertest.TracesSink), new(consumertest.LogsSink), new(consumertest.MetricsSink)
	tc, tr := refusingTraces(t, 5, ts)
	lc, lr := refusingLogs(t, 5, ls)
	mc, mr := refusingMetrics(t, 5, ms)
	stop := startReceiver(t, testConfig(dir), nopSettings(), pipelines{traces: tc, metrics: mc, logs: lc})

	require.Eventually(t, func() bool {
		c := newCollected()
		c.addTraces(ts.AllTraces())
		c.addLogs(ls.AllLogs())
		c.addMetrics(ms.AllMetrics())
		return len(c.spans) == len(ids) && len(c.logs) == len(ids) && mapsEqual(c.sums, sums)
	}, waitFor, 5*time.Millisecond)
	require.NoError(t, stop())

	assert.EqualValues(t, 5, tr.refused.Load())
	assert.EqualValues(t, 5, lr.refused.Load())
	assert.EqualValues(t, 5, mr.refused.Load())
	c := newCollected()
	c.addTraces(ts.AllTraces())
	c.addLogs(ls.AllLogs())
	assert.Empty(t, c.spanDups, "spans delivered twice")
	assert.Empty(t, c.logDups, "logs delivered twice")
	assert.Equal(t, len(ids), ts.SpanCount())
	assert.Equal(t, len(ids), ls.LogRecordCount())
}

func TestPermanentErrorDropsBatch(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	first := nextID("perm")
	require.NoError(t, tw.span(first))

	ts := new(consumertest.TracesSink)
	tc, tr := refusingTraces(t, 1, ts)
	tr.permanent = true
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()
	stop := startReceiver(t, testConfig(dir), set, pipelines{traces: tc})

	require.Eventually(t, func() bool { return tr.refused.Load() == 1 }, waitFor, time.Millisecond)
	second := nextID("perm")
	require.NoError(t, tw.span(second))
	require.Eventually(t, func() bool { return ts.SpanCount() == 1 }, waitFor, time.Millisecond)
	require.NoError(t, stop())

	c := newCollected()
	c.addTraces(ts.AllTraces())
	assert.Contains(t, c.spans, second)
	assert.NotContains(t, c.spans, first)
	assert.Equal(t, int64(1), sumOf(t, tel, "otelcol_receiver_mmap_dropped_items"))
}

// sumOf adds up the data points of an int64 sum from the test telemetry.
func sumOf(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var total int64
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			total += dp.Value
		}
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			total += dp.Value
		}
	default:
		t.Fatalf("unexpected data type %T for %s", m.Data, name)
	}
	return total
}

func TestSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	var ids []string
	for i := range 4 {
		tw := newTestWriter(t, filepath.Join(dir, "app-"+string(rune('a'+i))+".otlp"))
		for range 100 {
			id := nextID("multi")
			ids = append(ids, id)
			require.NoError(t, tw.span(id))
			require.NoError(t, tw.log(id))
		}
	}
	// One file that does not match the glob and one that is excluded.
	other := newTestWriter(t, filepath.Join(dir, "other.data"))
	require.NoError(t, other.span(nextID("ignored")))
	excluded := newTestWriter(t, filepath.Join(dir, "skip-me.otlp"))
	require.NoError(t, excluded.span(nextID("ignored")))

	cfg := testConfig(dir)
	cfg.Exclude = []string{filepath.Join(dir, "skip-*")}
	ts, ls := new(consumertest.TracesSink), new(consumertest.LogsSink)
	stop := startReceiver(t, cfg, nopSettings(), pipelines{traces: ts, logs: ls})
	require.Eventually(t, func() bool {
		return ts.SpanCount() == len(ids) && ls.LogRecordCount() == len(ids)
	}, waitFor, 5*time.Millisecond)
	// Give an ignored file the chance to show up wrongly.
	time.Sleep(3 * cfg.ScanInterval)
	require.NoError(t, stop())

	c := newCollected()
	c.addTraces(ts.AllTraces())
	c.addLogs(ls.AllLogs())
	assert.Len(t, c.spans, len(ids))
	assert.Len(t, c.logs, len(ids))
	assert.Empty(t, c.spanDups)
	assert.Empty(t, c.logDups)
	assert.Equal(t, len(ids), ts.SpanCount())
}

func TestFileAddedAndRemovedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()

	ts := new(consumertest.TracesSink)
	ms := new(consumertest.MetricsSink)
	cfg := testConfig(dir)
	cfg.Metrics.CollectionInterval = time.Hour // only the drain collects
	stop := startReceiver(t, cfg, set, pipelines{traces: ts, metrics: ms})

	path := filepath.Join(dir, "late.otlp")
	tw := newTestWriter(t, path)
	id := nextID("late")
	require.NoError(t, tw.span(id))
	require.NoError(t, tw.count(id, 7))
	require.Eventually(t, func() bool { return ts.SpanCount() == 1 }, waitFor, time.Millisecond)
	assert.Equal(t, int64(1), sumOf(t, tel, "otelcol_receiver_mmap_open_files"))

	// Removing the file drains it (metrics are collected one last time)
	// and closes it.
	tw.close()
	require.NoError(t, os.Remove(path))
	require.Eventually(t, func() bool {
		return sumOf(t, tel, "otelcol_receiver_mmap_open_files") == 0
	}, waitFor, time.Millisecond)
	c := newCollected()
	c.addMetrics(ms.AllMetrics())
	assert.Equal(t, map[string]int64{id: 7}, c.sums)

	// A new file under the same name is picked up again.
	tw2 := newTestWriter(t, path)
	id2 := nextID("late")
	require.NoError(t, tw2.span(id2))
	require.Eventually(t, func() bool { return ts.SpanCount() == 2 }, waitFor, time.Millisecond)
	require.NoError(t, stop())

	c = newCollected()
	c.addTraces(ts.AllTraces())
	assert.Contains(t, c.spans, id)
	assert.Contains(t, c.spans, id2)
	assert.Equal(t, int64(0), sumOf(t, tel, "otelcol_receiver_mmap_open_files"))
	assert.Equal(t, int64(2), sumOf(t, tel, "otelcol_receiver_accepted_spans"))
}

func TestShutdownDuringTraffic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "busy.otlp")
	tw := newTestWriter(t, path)

	var written []string
	var wmu sync.Mutex
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stopWriting:
				return
			default:
			}
			id := nextID("busy")
			if err := tw.span(id); err != nil {
				return
			}
			wmu.Lock()
			written = append(written, id)
			wmu.Unlock()
		}
	}()

	ts := new(consumertest.TracesSink)
	stop := startReceiver(t, testConfig(dir), nopSettings(), pipelines{traces: ts})
	require.Eventually(t, func() bool { return ts.SpanCount() > 500 }, waitFor, time.Millisecond)

	began := time.Now()
	require.NoError(t, stop())
	assert.Less(t, time.Since(began), 2*time.Second, "shutdown is not prompt")
	close(stopWriting)
	<-writerDone
	tw.close()

	// A second receiver reads on where the first one stopped.
	ts2 := new(consumertest.TracesSink)
	stop2 := startReceiver(t, testConfig(dir), nopSettings(), pipelines{traces: ts2})
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, stop2())

	wmu.Lock()
	defer wmu.Unlock()
	sent := map[string]bool{}
	for _, id := range written {
		sent[id] = true
	}
	c := newCollected()
	c.addTraces(ts.AllTraces())
	c.addTraces(ts2.AllTraces())
	assert.Empty(t, c.spanDups, "spans delivered twice")
	for id := range c.spans {
		assert.True(t, sent[id], "span %s was never written", id)
	}
	t.Logf("written %d, first receiver %d, second receiver %d", len(written), ts.SpanCount(), ts2.SpanCount())
}

func TestMetricsCollectedAtShutdown(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	id := nextID("final")
	for range 5 {
		require.NoError(t, tw.count(id, 2))
	}
	cfg := testConfig(dir)
	cfg.Metrics.CollectionInterval = time.Hour
	ms := new(consumertest.MetricsSink)
	stop := startReceiver(t, cfg, nopSettings(), pipelines{metrics: ms})
	// Let the reader fold the measurements into its aggregates.
	time.Sleep(200 * time.Millisecond)
	assert.Zero(t, ms.DataPointCount(), "collected before collection_interval")
	require.NoError(t, stop())
	c := newCollected()
	c.addMetrics(ms.AllMetrics())
	assert.Equal(t, map[string]int64{id: 10}, c.sums)
}

func TestOnlyConfiguredSignalIsRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.otlp")
	tw := newTestWriter(t, path)
	ids, _ := writeAll(t, tw, 50)

	ts := new(consumertest.TracesSink)
	stop := startReceiver(t, testConfig(dir), nopSettings(), pipelines{traces: ts})
	require.Eventually(t, func() bool { return ts.SpanCount() == len(ids) }, waitFor, time.Millisecond)
	require.NoError(t, stop())

	// The logs ring was left alone: every log record is still there.
	rd, err := ffitest.OpenReader(path, ffi.DefaultOptions())
	require.NoError(t, err)
	defer func() { require.NoError(t, rd.Close()) }()
	logs := 0
	for range 100 {
		b, ok, err := rd.Poll(ffi.Logs, time.Now())
		require.NoError(t, err)
		if !ok {
			if logs == len(ids) {
				break
			}
			continue
		}
		ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(b.Data)
		require.NoError(t, err)
		logs += ld.LogRecordCount()
		require.NoError(t, rd.Commit(ffi.Logs, b.Token))
	}
	assert.Equal(t, len(ids), logs)
	s, err := rd.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(len(ids)), s.RecordsRead[ffi.Logs])
}

func TestOpenFailureLoggedOnceAndRetried(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.otlp")
	require.NoError(t, os.WriteFile(bad, []byte("not an otlp-mmap file"), 0o600))
	good := newTestWriter(t, filepath.Join(dir, "good.otlp"))
	id := nextID("good")
	require.NoError(t, good.span(id))

	core, logs := observer.New(zapcore.DebugLevel)
	set := nopSettings()
	set.Logger = zap.New(core)
	ts := new(consumertest.TracesSink)
	cfg := testConfig(dir)
	stop := startReceiver(t, cfg, set, pipelines{traces: ts})

	require.Eventually(t, func() bool { return ts.SpanCount() == 1 }, waitFor, time.Millisecond)
	time.Sleep(5 * cfg.ScanInterval) // several failed attempts
	warnings := logs.FilterLevelExact(zapcore.WarnLevel).FilterField(zap.String("path", bad)).Len()
	assert.Equal(t, 1, warnings, "a file that fails to open is logged once")

	// Once the file becomes valid it is read.
	require.NoError(t, os.Remove(bad))
	fixed := newTestWriter(t, bad)
	id2 := nextID("fixed")
	require.NoError(t, fixed.span(id2))
	require.Eventually(t, func() bool { return ts.SpanCount() == 2 }, waitFor, time.Millisecond)
	require.NoError(t, stop())
}

func TestSecondReaderOfALockedFile(t *testing.T) {
	dir := t.TempDir()
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	for range 20 {
		require.NoError(t, tw.span(nextID("locked")))
	}
	ts1, ts2 := new(consumertest.TracesSink), new(consumertest.TracesSink)
	set1 := nopSettings()
	set1.ID = component.NewIDWithName(metadata.Type, "one")
	set2 := nopSettings()
	set2.ID = component.NewIDWithName(metadata.Type, "two")
	stop1 := startReceiver(t, testConfig(dir), set1, pipelines{traces: ts1})
	stop2 := startReceiver(t, testConfig(dir), set2, pipelines{traces: ts2})
	require.Eventually(t, func() bool { return ts1.SpanCount()+ts2.SpanCount() == 20 }, waitFor, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, stop1())
	require.NoError(t, stop2())
	assert.Equal(t, 20, ts1.SpanCount()+ts2.SpanCount())
}

func TestSharedInstancePerComponentID(t *testing.T) {
	f := NewFactory()
	cfg := testConfig(t.TempDir())
	set := nopSettings()
	tr, err := f.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	other := nopSettings()
	other.ID = component.NewIDWithName(metadata.Type, "other")
	mr, err := f.CreateMetrics(context.Background(), other, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.Same(t, tr, lr)
	assert.NotSame(t, tr, mr)
	for _, c := range []component.Component{tr, lr, mr} {
		require.NoError(t, c.Start(context.Background(), componenttest.NewNopHost()))
	}
	for _, c := range []component.Component{tr, lr, mr} {
		require.NoError(t, c.Shutdown(context.Background()))
	}
	// After shutdown the ID gets a fresh instance.
	tr2, err := f.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.NotSame(t, tr, tr2)
	require.NoError(t, tr2.Shutdown(context.Background()))
}
