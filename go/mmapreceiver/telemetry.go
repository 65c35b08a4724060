package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"

	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/metadata"
)

const (
	transport = "mmap"
	format    = "protobuf"
)

// telemetry is the receiver's own telemetry: the standard receiver
// operations (obsreport) and the receiver_mmap_* metrics of metadata.yaml.
type telemetry struct {
	obsrep      *receiverhelper.ObsReport
	metrics     *metadata.TelemetryBuilder
	signalAttrs [3]metric.MeasurementOption
}

func newTelemetry(set receiver.Settings) (*telemetry, error) {
	obsrep, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              transport,
		LongLivedCtx:           true,
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	metrics, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	t := &telemetry{obsrep: obsrep, metrics: metrics}
	for _, sig := range ffi.Signals {
		t.signalAttrs[sig] = metric.WithAttributeSet(attribute.NewSet(attribute.String("signal", sig.String())))
	}
	return t, nil
}

func (t *telemetry) shutdown() { t.metrics.Shutdown() }

func (t *telemetry) fileOpened() {
	t.metrics.ReceiverMmapOpenFiles.Add(context.Background(), 1)
}

func (t *telemetry) fileClosed() {
	t.metrics.ReceiverMmapOpenFiles.Add(context.Background(), -1)
}

// openFailed counts a file that could not be opened or that the access
// settings refuse.
func (t *telemetry) openFailed() {
	t.metrics.ReceiverMmapOpenFailures.Add(context.Background(), 1)
}

// filesOverLimit counts files newly left unopened because max_files files
// are open.
func (t *telemetry) filesOverLimit(n int) {
	t.metrics.ReceiverMmapFilesOverLimit.Add(context.Background(), int64(n))
}

// checkpointIgnored counts a checkpoint found in storage and not restored.
func (t *telemetry) checkpointIgnored() {
	t.metrics.ReceiverMmapCheckpointsIgnored.Add(context.Background(), 1)
}

// fileDeleted counts a file removed by delete_after_drain.
func (t *telemetry) fileDeleted() {
	t.metrics.ReceiverMmapDeletedFiles.Add(context.Background(), 1)
}

func (t *telemetry) droppedItems(sig ffi.Signal, n int) {
	if n > 0 {
		t.metrics.ReceiverMmapDroppedItems.Add(context.Background(), int64(n), t.signalAttrs[sig])
	}
}

func (t *telemetry) consumeRetry(sig ffi.Signal) {
	t.metrics.ReceiverMmapConsumeRetries.Add(context.Background(), 1, t.signalAttrs[sig])
}

// recordStatsDelta adds what grew between two stats snapshots of one file.
func (t *telemetry) recordStatsDelta(prev, cur *ffi.Stats) {
	ctx := context.Background()
	delta := func(a, b uint64) int64 {
		if b >= a {
			return int64(b - a)
		}
		return int64(b) // counters started over
	}
	add := func(c metric.Int64Counter, v int64, opts ...metric.AddOption) {
		if v > 0 {
			c.Add(ctx, v, opts...)
		}
	}
	m := t.metrics
	prevDropped, curDropped := prev.DroppedRecords(), cur.DroppedRecords()
	for _, sig := range ffi.Signals {
		add(m.ReceiverMmapDroppedRecords, delta(prevDropped[sig], curDropped[sig]), t.signalAttrs[sig])
		add(m.ReceiverMmapRecordsRead, delta(prev.RecordsRead[sig], cur.RecordsRead[sig]), t.signalAttrs[sig])
		add(m.ReceiverMmapCorruptRecords, delta(prev.CorruptRecords[sig], cur.CorruptRecords[sig]), t.signalAttrs[sig])
		add(m.ReceiverMmapAbandonedSlots, delta(prev.AbandonedSlots[sig], cur.AbandonedSlots[sig]), t.signalAttrs[sig])
	}
	add(m.ReceiverMmapIncompleteSpans, delta(prev.IncompleteSpans, cur.IncompleteSpans))
	add(m.ReceiverMmapOrphanSpanEvents, delta(prev.OrphanSpanEvents, cur.OrphanSpanEvents))
	add(m.ReceiverMmapBadRefs, delta(prev.BadRefs, cur.BadRefs))
	add(m.ReceiverMmapMetricOverflows, delta(prev.MetricOverflows, cur.MetricOverflows))
	add(m.ReceiverMmapWriterRestarts, delta(prev.WriterRestarts, cur.WriterRestarts))
}

// recordGauges samples the open files: the fullest ring of each read signal,
// and the spans in flight when traces are read.
func (t *telemetry) recordGauges(files []*fileReader, signals []ffi.Signal) {
	ctx := context.Background()
	var fill [3]float64
	var inFlight int64
	for _, fr := range files {
		s, ok := fr.refreshStats()
		if !ok {
			continue
		}
		for _, sig := range signals {
			if c := s.RingCapacity[sig]; c > 0 {
				fill[sig] = max(fill[sig], float64(s.RingUnread[sig])/float64(c))
			}
		}
		inFlight += int64(s.InFlightSpans)
	}
	for _, sig := range signals {
		t.metrics.ReceiverMmapRingFillRatio.Record(ctx, fill[sig], t.signalAttrs[sig])
		if sig == ffi.Traces {
			t.metrics.ReceiverMmapInFlightSpans.Record(ctx, inFlight)
		}
	}
}
