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
)

// writeAndDeliver writes a span, a log record and a measurement into a new
// file, starts a receiver on it and waits until all three were delivered
// (so the reader saw the writer alive). The writer is returned open.
func writeAndDeliver(t *testing.T, cfg *Config, tel *componenttest.Telemetry) (*testWriter, *consumertest.MetricsSink) {
	t.Helper()
	dir := filepath.Dir(cfg.Include[0])
	tw := newTestWriter(t, filepath.Join(dir, "app.otlp"))
	id := nextID("drain")
	require.NoError(t, tw.span(id))
	require.NoError(t, tw.log(id))
	require.NoError(t, tw.count(id, 7))
	ts, ls, ms := new(consumertest.TracesSink), new(consumertest.LogsSink), new(consumertest.MetricsSink)
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()
	startReceiver(t, cfg, set, pipelines{traces: ts, logs: ls, metrics: ms})
	require.Eventually(t, func() bool {
		return ts.SpanCount() == 1 && ls.LogRecordCount() == 1 && ms.DataPointCount() > 0
	}, waitFor, time.Millisecond)
	return tw, ms
}

func TestDeleteAfterDrainRemovesADeadWritersFile(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := testConfig(t.TempDir())
	tw, ms := writeAndDeliver(t, cfg, tel)
	id := nextID("last")
	require.NoError(t, tw.count(id, 5))
	tw.close()
	require.Eventually(t, func() bool {
		_, err := os.Stat(tw.path)
		return os.IsNotExist(err)
	}, waitFor, time.Millisecond)
	assert.Equal(t, int64(1), sumOf(t, tel, "otelcol_receiver_mmap_deleted_files"))
	// The measurement written just before the writer went was delivered
	// before the file was deleted.
	c := newCollected()
	c.addMetrics(ms.AllMetrics())
	assert.Equal(t, int64(5), c.sums[id])
}

func TestDeleteAfterDrainOffKeepsTheFile(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := testConfig(t.TempDir())
	cfg.DeleteAfterDrain = false
	tw, _ := writeAndDeliver(t, cfg, tel)
	tw.close()
	// Many scans and polls after the writer went.
	time.Sleep(20 * cfg.ScanInterval)
	_, err := os.Stat(tw.path)
	require.NoError(t, err)
	assert.Equal(t, int64(0), sumOf(t, tel, "otelcol_receiver_mmap_deleted_files"))
}
