package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// dropWarnInterval is the least time between two warnings about the records
// one file lost for good.
const dropWarnInterval = time.Minute

// dropWarner logs, at warn level and at most once per dropWarnInterval per
// file, the records the file lost for good: the metrics count them, the log
// says which file and why.
type dropWarner struct {
	warned   bool
	lastWarn time.Time
	reported uint64 // lost(stats) at the last warning
}

// lost is every permanent loss the library counts for one file.
func lost(s *ffi.Stats) uint64 {
	var n uint64
	dropped := s.DroppedRecords()
	for _, sig := range ffi.Signals {
		n += s.CorruptRecords[sig] + s.AbandonedSlots[sig] + dropped[sig]
	}
	return n + s.BadRefs
}

// observe warns when the file lost records since the last warning and the
// last warning is older than dropWarnInterval (or there was none, or the
// file is being closed: final).
func (d *dropWarner) observe(logger *zap.Logger, path string, s *ffi.Stats, now time.Time, final bool) {
	total := lost(s)
	if total <= d.reported || (!final && d.warned && now.Sub(d.lastWarn) < dropWarnInterval) {
		return
	}
	logger.Warn("OTLP-MMAP file lost records for good (counted in otelcol_receiver_mmap_* metrics)",
		zap.String("path", path),
		zap.Uint64("lost_since_last_warning", total-d.reported),
		zap.Uint64s("corrupt_records", s.CorruptRecords[:]),
		zap.Uint64s("abandoned_slots", s.AbandonedSlots[:]),
		zap.Uint64s("oversized_records", s.OversizedRecords[:]),
		zap.Uint64("invalid_span_ids", s.InvalidSpanIDs),
		zap.Uint64("duplicate_span_starts", s.DuplicateSpanStarts),
		zap.Uint64("measurements_dropped", s.UnknownMetricMeasurements+s.MeasurementsWithoutValue+s.MeasurementsOverMetricLimit),
		zap.Uint64("bad_refs", s.BadRefs),
		zap.String("signals_order", "traces, logs, metrics"))
	d.warned, d.lastWarn, d.reported = true, now, total
}
