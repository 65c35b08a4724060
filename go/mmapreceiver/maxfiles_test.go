package mmapreceiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMaxFilesHoldsBackFilesUntilOthersClose(t *testing.T) {
	dir := t.TempDir()
	ids := map[string]string{}
	writers := map[string]*testWriter{}
	for _, name := range []string{"a", "b", "c"} {
		path := filepath.Join(dir, name+".otlp")
		writers[name] = newTestWriter(t, path)
		ids[name] = nextID(name)
		require.NoError(t, writers[name].span(ids[name]))
	}

	core, logs := observer.New(zapcore.DebugLevel)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	cfg := testConfig(dir)
	cfg.MaxFiles = 2
	ts := new(consumertest.TracesSink)
	stop := startReceiver(t, cfg, set, pipelines{traces: ts})

	// Files are opened in path order: a and b; c waits.
	require.Eventually(t, func() bool { return ts.SpanCount() == 2 }, waitFor, time.Millisecond)
	time.Sleep(5 * cfg.ScanInterval) // several scans with c held back
	assert.Equal(t, 2, ts.SpanCount())
	assert.Equal(t, int64(2), sumOf(t, tel, "otelcol_receiver_mmap_open_files"))
	held := logs.FilterMessageSnippet("max_files").All()
	require.Len(t, held, 1, "logged once, not at every scan")
	assert.Equal(t, zapcore.WarnLevel, held[0].Level)
	assert.Equal(t, []any{filepath.Join(dir, "c.otlp")}, held[0].ContextMap()["paths"])
	assert.EqualValues(t, 2, held[0].ContextMap()["max_files"])
	assert.Equal(t, int64(1), sumOf(t, tel, "otelcol_receiver_mmap_files_over_limit"))

	// a goes away: once its reader closed, c is opened.
	writers["a"].close()
	require.NoError(t, os.Remove(filepath.Join(dir, "a.otlp")))
	require.Eventually(t, func() bool { return ts.SpanCount() == 3 }, waitFor, time.Millisecond)
	require.NoError(t, stop())

	c := newCollected()
	c.addTraces(ts.AllTraces())
	for name, id := range ids {
		assert.Contains(t, c.spans, id, name)
	}
	assert.Equal(t, int64(1), sumOf(t, tel, "otelcol_receiver_mmap_files_over_limit"), "c is counted once")
	assert.Equal(t, 1, logs.FilterMessageSnippet("max_files had held back").Len())
}

func TestDoubleStarIncludeReadsNestedDirectories(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for _, sub := range []string{"", "app1", "app2/pod-7"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, sub), 0o755))
		id := writeFile(t, filepath.Join(dir, sub, "telemetry.otlp"))
		want = append(want, id)
	}
	skipped := writeFile(t, filepath.Join(dir, "app1", "telemetry.otlp.bak"))
	cfg := testConfig(dir)
	cfg.Include = []string{filepath.Join(dir, "**", "*.otlp")}
	seen, _ := runAndCollect(t, cfg, len(want))
	for _, id := range want {
		assert.True(t, seen[id], id)
	}
	assert.False(t, seen[skipped])
}
