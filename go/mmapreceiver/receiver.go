package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/metadata"
)

const (
	transport = "mmap"
	format    = "protobuf"

	// minIdleSleep is the first sleep after a reader found nothing to do;
	// it doubles up to poll_interval while the file stays idle.
	minIdleSleep = 50 * time.Microsecond
	// batchFillWait: after a batch that was not full (or records read without
	// a batch) a reader waits this long (at most poll_interval) before it
	// polls again, so that batches fill up instead of carrying a few records
	// each; full batches are read back to back.
	batchFillWait = 5 * time.Millisecond
	// minMetricsRefresh: a file whose metrics ring got no new measurement
	// since the previous collection is collected again (re-sending the
	// unchanged cumulative values) only after this long, or after
	// collection_interval when that is longer.
	minMetricsRefresh = time.Minute
	// finalOfferBudget bounds how long shutdown spends offering the batches
	// that are still pending, when the shutdown context has no deadline.
	finalOfferBudget = 500 * time.Millisecond
)

// mmapReceiver reads every file matching the configured globs. One instance
// serves the traces, metrics and logs pipelines of a component ID.
type mmapReceiver struct {
	cfg    *Config
	set    receiver.Settings
	obsrep *receiverhelper.ObsReport
	tel    *metadata.TelemetryBuilder

	nextTraces  consumer.Traces
	nextMetrics consumer.Metrics
	nextLogs    consumer.Logs

	signalAttrs [3]metric.MeasurementOption

	owners map[uint32]bool // allowed_owners as uids; nil: any

	mu          sync.Mutex
	files       map[string]*fileReader // open files by path
	openFailed  map[string]int32       // path -> status code of the failure already logged
	rejected    map[string]string      // path -> why it is not read (already logged)
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	started     bool
	shutdownCtx context.Context // set by Shutdown before the loops are cancelled
}

func newMmapReceiver(set receiver.Settings, cfg *Config) (*mmapReceiver, error) {
	obsrep, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              transport,
		LongLivedCtx:           true,
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	owners, err := resolveOwners(cfg.AllowedOwners)
	if err != nil {
		return nil, err
	}
	r := &mmapReceiver{
		cfg:        cfg,
		set:        set,
		obsrep:     obsrep,
		tel:        tel,
		owners:     owners,
		files:      map[string]*fileReader{},
		openFailed: map[string]int32{},
		rejected:   map[string]string{},
	}
	for _, sig := range ffi.Signals {
		r.signalAttrs[sig] = metric.WithAttributeSet(attribute.NewSet(attribute.String("signal", sig.String())))
	}
	return r, nil
}

func (r *mmapReceiver) setTraces(next consumer.Traces)   { r.nextTraces = next }
func (r *mmapReceiver) setMetrics(next consumer.Metrics) { r.nextMetrics = next }
func (r *mmapReceiver) setLogs(next consumer.Logs)       { r.nextLogs = next }

// enabledSignals lists the signals that have a pipeline; the rings of the
// others are left untouched.
func (r *mmapReceiver) enabledSignals() []ffi.Signal {
	var out []ffi.Signal
	if r.nextTraces != nil {
		out = append(out, ffi.Traces)
	}
	if r.nextLogs != nil {
		out = append(out, ffi.Logs)
	}
	if r.nextMetrics != nil {
		out = append(out, ffi.Metrics)
	}
	return out
}

func (r *mmapReceiver) readerOptions() ffi.Options {
	return ffi.Options{
		MaxInFlightSpans:       uint64(r.cfg.Traces.MaxInFlightSpans),
		MaxSpanAge:             r.cfg.Traces.MaxSpanAge,
		MaxBatchSpans:          uint64(r.cfg.Traces.MaxBatchSize),
		MaxBatchLogs:           uint64(r.cfg.Logs.MaxBatchSize),
		MetricCardinalityLimit: uint64(r.cfg.Metrics.CardinalityLimit),
	}
}

// Start opens the files that match now and starts the scanner that picks up
// new files every scan_interval.
func (r *mmapReceiver) Start(_ context.Context, _ component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return nil
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.scanLocked(ctx)
	r.wg.Add(1)
	go r.scanLoop(ctx)
	return nil
}

// Shutdown stops every loop, offers the pending batches once more and
// closes the files. It returns after every goroutine has ended.
func (r *mmapReceiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if !r.started || r.cancel == nil {
		r.mu.Unlock()
		r.tel.Shutdown()
		return nil
	}
	r.shutdownCtx = ctx
	cancel := r.cancel
	r.cancel = nil
	r.mu.Unlock()

	cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		// Only a consumer call that ignores its cancelled context can hold
		// a loop this long; the loops close their files when it returns.
		err = fmt.Errorf("mmap receiver shutdown: %w", ctx.Err())
	}
	r.tel.Shutdown()
	return err
}

func (r *mmapReceiver) finalContext() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdownCtx != nil {
		return context.WithoutCancel(r.shutdownCtx)
	}
	return context.Background()
}

func (r *mmapReceiver) finalDeadline() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	deadline := time.Now().Add(finalOfferBudget)
	if r.shutdownCtx != nil {
		if d, ok := r.shutdownCtx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	return deadline
}

func (r *mmapReceiver) scanLoop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		r.scanLocked(ctx)
		files := make([]*fileReader, 0, len(r.files))
		for _, fr := range r.files {
			files = append(files, fr)
		}
		r.mu.Unlock()
		r.sampleStats(files)
	}
}

// fileKey identifies the file behind a path, so that a file replaced by a
// new one under the same name is treated as a removal plus an addition.
type fileKey struct {
	dev, ino uint64
}

func statKey(path string) (fileKey, bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return fileKey{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, true
	}
	return fileKey{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true //nolint:unconvert // field widths differ per platform
}

// match evaluates include minus exclude, minus the files that the
// allowed_owners, reject_*_writable and follow_symlinks settings refuse
// (logged once per path and reason). Paths are made absolute.
func (r *mmapReceiver) match() map[string]fileKey {
	out := map[string]fileKey{}
	refused := map[string]string{}
	for _, pattern := range r.cfg.Include {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			continue // validated in Config.Validate
		}
		for _, m := range matches {
			abs, err := filepath.Abs(m)
			if err != nil {
				abs = filepath.Clean(m)
			}
			if _, seen := out[abs]; seen || r.excluded(m, abs) {
				continue
			}
			if why := r.refuse(abs); why != "" {
				refused[abs] = why
				continue
			}
			if key, ok := statKey(abs); ok {
				out[abs] = key
			}
		}
	}
	for path, why := range refused {
		if r.rejected[path] != why {
			r.set.Logger.Warn("Not reading OTLP-MMAP file", zap.String("path", path), zap.String("reason", why))
			r.tel.ReceiverMmapOpenFailures.Add(context.Background(), 1)
		}
	}
	r.rejected = refused
	return out
}

// refuse says why the file at path must not be read, or "" when it may be.
// The owner and mode are those of the file a symbolic link points to.
func (r *mmapReceiver) refuse(path string) string {
	lfi, err := os.Lstat(path)
	if err != nil {
		return "" // gone: statKey drops it
	}
	if lfi.Mode()&os.ModeSymlink != 0 && !r.cfg.FollowSymlinks {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "" // dangling: statKey drops it
		}
		if !r.insideIncludeDirs(target) {
			return fmt.Sprintf("symbolic link to %s, outside the include directories (follow_symlinks is false)", target)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	perm := fi.Mode().Perm()
	if r.cfg.RejectWorldWritable && perm&0o002 != 0 {
		return fmt.Sprintf("world-writable (mode %v; reject_world_writable is true)", perm)
	}
	if r.cfg.RejectGroupWritable && perm&0o020 != 0 {
		return fmt.Sprintf("group-writable (mode %v; reject_group_writable is true)", perm)
	}
	if r.owners != nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !r.owners[st.Uid] {
			return fmt.Sprintf("owned by uid %d, not one of allowed_owners", st.Uid)
		}
	}
	return ""
}

// insideIncludeDirs: whether target lies in a directory matched by the
// directory part of an include pattern (both taken with symlinks resolved).
func (r *mmapReceiver) insideIncludeDirs(target string) bool {
	dir := filepath.Dir(target)
	for _, pattern := range r.cfg.Include {
		abs, err := filepath.Abs(pattern)
		if err != nil {
			continue
		}
		pdir := filepath.Dir(abs)
		if ok, _ := filepath.Match(pdir, dir); ok {
			return true
		}
		// The pattern's directory may itself be reached through a link.
		if real, err := filepath.EvalSymlinks(pdir); err == nil {
			if ok, _ := filepath.Match(real, dir); ok {
				return true
			}
		}
	}
	return false
}

func (r *mmapReceiver) excluded(path, abs string) bool {
	for _, pattern := range r.cfg.Exclude {
		if ok, _ := filepath.Match(pattern, path); ok {
			return true
		}
		if ok, _ := filepath.Match(pattern, abs); ok {
			return true
		}
	}
	return false
}

// scanLocked reconciles the open files with what the globs match now.
func (r *mmapReceiver) scanLocked(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	matches := r.match()

	for path, fr := range r.files {
		select {
		case <-fr.done:
			// The reader gave up on the file (library error); open it
			// again below.
			delete(r.files, path)
			continue
		default:
		}
		if key, ok := matches[path]; !ok || key != fr.key {
			r.set.Logger.Info("File no longer matches or was replaced; draining it", zap.String("path", path))
			fr.requestDrain()
			delete(r.files, path)
		}
	}
	for path := range r.openFailed {
		if _, ok := matches[path]; !ok {
			delete(r.openFailed, path)
		}
	}

	paths := make([]string, 0, len(matches))
	for path := range matches {
		if _, open := r.files[path]; !open {
			paths = append(paths, path)
		}
	}
	sort.Strings(paths)
	signals := r.enabledSignals()
	for _, path := range paths {
		key := matches[path]
		rd, err := ffi.Open(path, r.readerOptions())
		if err == nil {
			if after, ok := statKey(path); !ok || after != key {
				// Replaced between the stat and the open: try again at the
				// next scan rather than guess which file was opened.
				_ = rd.Close()
				continue
			}
		}
		if err != nil {
			r.tel.ReceiverMmapOpenFailures.Add(ctx, 1)
			code := ffi.Code(err)
			if prev, logged := r.openFailed[path]; !logged || prev != code {
				r.set.Logger.Warn("Cannot open OTLP-MMAP file; will retry at later scans",
					zap.String("path", path), zap.Error(err))
				r.openFailed[path] = code
			}
			continue
		}
		if _, failedBefore := r.openFailed[path]; failedBefore {
			r.set.Logger.Info("Opened OTLP-MMAP file after earlier failures", zap.String("path", path))
			delete(r.openFailed, path)
		} else {
			r.set.Logger.Debug("Opened OTLP-MMAP file", zap.String("path", path))
		}
		fr := newFileReader(r, path, key, rd, signals)
		r.files[path] = fr
		r.tel.ReceiverMmapOpenFiles.Add(ctx, 1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			fr.run(ctx)
		}()
	}
}

// sampleStats turns the readers' counters into telemetry.
func (r *mmapReceiver) sampleStats(files []*fileReader) {
	ctx := context.Background()
	var fill [3]float64
	var inFlight int64
	for _, fr := range files {
		s, ok := fr.refreshStats()
		if !ok {
			continue
		}
		for _, sig := range fr.signals {
			if c := s.RingCapacity[sig]; c > 0 {
				if ratio := float64(s.RingUnread[sig]) / float64(c); ratio > fill[sig] {
					fill[sig] = ratio
				}
			}
		}
		inFlight += int64(s.InFlightSpans)
	}
	for _, sig := range r.enabledSignals() {
		r.tel.ReceiverMmapRingFillRatio.Record(ctx, fill[sig], r.signalAttrs[sig])
	}
	if r.nextTraces != nil {
		r.tel.ReceiverMmapInFlightSpans.Record(ctx, inFlight)
	}
}

// recordStatsDelta adds what grew between two stats snapshots of one file.
func (r *mmapReceiver) recordStatsDelta(prev, cur *ffi.Stats) {
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
	for _, sig := range ffi.Signals {
		add(r.tel.ReceiverMmapRecordsRead, delta(prev.RecordsRead[sig], cur.RecordsRead[sig]), r.signalAttrs[sig])
		add(r.tel.ReceiverMmapCorruptRecords, delta(prev.CorruptRecords[sig], cur.CorruptRecords[sig]), r.signalAttrs[sig])
	}
	add(r.tel.ReceiverMmapIncompleteSpans, delta(prev.IncompleteSpans, cur.IncompleteSpans))
	add(r.tel.ReceiverMmapOrphanSpanEvents, delta(prev.OrphanSpanEvents, cur.OrphanSpanEvents))
	add(r.tel.ReceiverMmapBadRefs, delta(prev.BadRefs, cur.BadRefs))
	add(r.tel.ReceiverMmapMetricOverflows, delta(prev.MetricOverflows, cur.MetricOverflows))
	add(r.tel.ReceiverMmapWriterRestarts, delta(prev.WriterRestarts, cur.WriterRestarts))
}

// payload is one unmarshalled batch of any signal.
type payload struct {
	traces  ptrace.Traces
	logs    plog.Logs
	metrics pmetric.Metrics
}

func unmarshal(sig ffi.Signal, data []byte) (payload, error) {
	var p payload
	var err error
	switch sig {
	case ffi.Traces:
		p.traces, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
	case ffi.Logs:
		p.logs, err = (&plog.ProtoUnmarshaler{}).UnmarshalLogs(data)
	case ffi.Metrics:
		p.metrics, err = (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(data)
	default:
		err = fmt.Errorf("unknown signal %v", sig)
	}
	return p, err
}

// consume hands one batch to the next consumer, reporting it through
// obsreport. It returns the item count and the consumer's answer.
func (r *mmapReceiver) consume(ctx context.Context, sig ffi.Signal, p payload) (int, error) {
	switch sig {
	case ffi.Traces:
		n := p.traces.SpanCount()
		opCtx := r.obsrep.StartTracesOp(ctx)
		err := r.nextTraces.ConsumeTraces(opCtx, p.traces)
		r.obsrep.EndTracesOp(opCtx, format, n, err)
		return n, err
	case ffi.Logs:
		n := p.logs.LogRecordCount()
		opCtx := r.obsrep.StartLogsOp(ctx)
		err := r.nextLogs.ConsumeLogs(opCtx, p.logs)
		r.obsrep.EndLogsOp(opCtx, format, n, err)
		return n, err
	case ffi.Metrics:
		n := p.metrics.DataPointCount()
		opCtx := r.obsrep.StartMetricsOp(ctx)
		err := r.nextMetrics.ConsumeMetrics(opCtx, p.metrics)
		r.obsrep.EndMetricsOp(opCtx, format, n, err)
		return n, err
	}
	return 0, errors.New("unknown signal")
}
