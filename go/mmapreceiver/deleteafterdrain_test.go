package mmapreceiver

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

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
	// Counted just after the unlink.
	require.Eventually(t, func() bool { return sumOf(t, tel, "otelcol_receiver_mmap_deleted_files") == 1 }, waitFor, time.Millisecond)
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

// A writer that died while no Collector ran: its file is found with its
// lock released and never seen held. Once the file is older than
// unlockedWriterGrace and idle that long, the writer is presumed gone:
// everything in the file arrives, then the file is deleted.
func TestDeleteAfterDrainRemovesTheFileOfAWriterThatDiedBeforeTheCollector(t *testing.T) {
	grace := unlockedWriterGrace
	unlockedWriterGrace = 300 * time.Millisecond
	t.Cleanup(func() { unlockedWriterGrace = grace })
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := testConfig(t.TempDir())
	tw := newTestWriter(t, filepath.Join(filepath.Dir(cfg.Include[0]), "app.otlp"))
	id := nextID("dead")
	require.NoError(t, tw.span(id))
	require.NoError(t, tw.log(id))
	require.NoError(t, tw.count(id, 3))
	tw.close()

	ts, ls, ms := new(consumertest.TracesSink), new(consumertest.LogsSink), new(consumertest.MetricsSink)
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()
	started := time.Now()
	startReceiver(t, cfg, set, pipelines{traces: ts, logs: ls, metrics: ms})
	require.Eventually(t, func() bool {
		_, err := os.Stat(tw.path)
		return os.IsNotExist(err)
	}, waitFor, time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(started), unlockedWriterGrace, "deleted only after the grace period")
	// Counted just after the unlink.
	require.Eventually(t, func() bool { return sumOf(t, tel, "otelcol_receiver_mmap_deleted_files") == 1 }, waitFor, time.Millisecond)
	c := newCollected()
	c.addTraces(ts.AllTraces())
	c.addLogs(ls.AllLogs())
	c.addMetrics(ms.AllMetrics())
	assert.Contains(t, c.logs, id)
	assert.Empty(t, c.logDups)
	assert.Equal(t, int64(3), c.sums[id])
	assert.Equal(t, 1, ts.SpanCount())
}

// A file whose writer is alive is never presumed gone, however long it is idle.
func TestDeleteAfterDrainKeepsAnIdleLiveWritersFile(t *testing.T) {
	grace := unlockedWriterGrace
	unlockedWriterGrace = 50 * time.Millisecond
	t.Cleanup(func() { unlockedWriterGrace = grace })
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := testConfig(t.TempDir())
	tw, _ := writeAndDeliver(t, cfg, tel)
	time.Sleep(20 * unlockedWriterGrace)
	_, err := os.Stat(tw.path)
	require.NoError(t, err)
	require.NoError(t, tw.count(nextID("alive"), 1))
}

// A writer that died holding a claimed measurement slot it never published,
// after everything it published was collected: the reader skips the slot as
// abandoned, which is the last thing to read, so the file is drained and
// deleted (the abandoned slot counts as read for "anything new since the
// last collection", as it does for the library's drained check).
func TestDeleteAfterDrainRemovesTheFileOfAWriterThatDiedWithAMeasurementClaimed(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := testConfig(t.TempDir())
	tw, ms := writeAndDeliver(t, cfg, tel)
	claimMeasurementSlot(t, tw.path)
	tw.close()
	require.Eventually(t, func() bool {
		_, err := os.Stat(tw.path)
		return os.IsNotExist(err)
	}, waitFor, time.Millisecond, "the file of the dead writer is drained and deleted")
	require.Eventually(t, func() bool { return sumOf(t, tel, "otelcol_receiver_mmap_abandoned_slots") == 1 }, waitFor, time.Millisecond)
	c := newCollected()
	c.addMetrics(ms.AllMetrics())
	assert.Len(t, c.sums, 1)
	for _, v := range c.sums {
		assert.Equal(t, int64(7), v)
	}
}

// claimMeasurementSlot does what a writer killed between its claim and its
// publish leaves behind: writer_index of the measurements ring one further,
// the slot's availability flag untouched.
func claimMeasurementSlot(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	const page = 4096
	header, err := syscall.Mmap(int(f.Fd()), 0, page, syscall.PROT_READ, syscall.MAP_SHARED)
	require.NoError(t, err)
	ring := binary.LittleEndian.Uint64(header[24:32]) // the file header's measurements offset
	require.NoError(t, syscall.Munmap(header))
	base := int64(ring) &^ (page - 1)
	m, err := syscall.Mmap(int(f.Fd()), base, page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	require.NoError(t, err)
	defer func() { require.NoError(t, syscall.Munmap(m)) }()
	writerIndex := (*int64)(unsafe.Pointer(&m[int64(ring)-base+24])) // the ring header's writer_index
	atomic.AddInt64(writerIndex, 1)
}
