package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/otelcol-mmap/mmapreceiver/internal/access"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/finder"
)

const (
	// finalOfferBudget bounds how long shutdown spends offering the batches
	// that are still pending, when the shutdown context has no deadline.
	finalOfferBudget = 500 * time.Millisecond
	// maxPathsLogged: how many of the files refused for max_files one log
	// line names.
	maxPathsLogged = 10
)

// mmapReceiver reads every file matching the configured globs. One instance
// serves the traces, metrics and logs pipelines of a component ID.
type mmapReceiver struct {
	id        component.ID
	cfg       *Config
	logger    *zap.Logger
	tel       *telemetry
	policy    *access.Policy
	consumers [3]signalConsumer // per signal; nil: no pipeline

	// openFiles counts the files with an open library reader, draining
	// ones included (max_files caps it).
	openFiles atomic.Int64

	mu          sync.Mutex
	files       map[string]*fileReader // readers by path, not draining
	openFailed  map[string]string      // path -> kind of the open failure already logged
	refused     map[string]string      // path -> why the access settings refuse it (already logged)
	overLimit   map[string]bool        // paths left unopened because of max_files (already logged)
	cancel      context.CancelFunc
	poller      *idlePoller // watches the idle files; set by Start
	wg          sync.WaitGroup
	started     bool
	shutdownCtx context.Context // set by Shutdown before the loops are cancelled
	store       *checkpoints    // nil without the storage key
}

func newMmapReceiver(set receiver.Settings, cfg *Config) (*mmapReceiver, error) {
	tel, err := newTelemetry(set)
	if err != nil {
		return nil, err
	}
	owners, err := resolveOwners(cfg.AllowedOwners)
	if err != nil {
		return nil, err
	}
	return &mmapReceiver{
		id:     set.ID,
		cfg:    cfg,
		logger: set.Logger,
		tel:    tel,
		policy: &access.Policy{
			Include:             cfg.Include,
			AllowedOwners:       owners,
			RejectWorldWritable: cfg.RejectWorldWritable,
			RejectGroupWritable: cfg.RejectGroupWritable,
			FollowSymlinks:      cfg.FollowSymlinks,
		},
		files:      map[string]*fileReader{},
		openFailed: map[string]string{},
		refused:    map[string]string{},
		overLimit:  map[string]bool{},
	}, nil
}

func (r *mmapReceiver) setTraces(next consumer.Traces) {
	r.consumers[ffi.Traces] = newTracesConsumer(next, r.tel.obsrep)
}

func (r *mmapReceiver) setMetrics(next consumer.Metrics) {
	r.consumers[ffi.Metrics] = newMetricsConsumer(next, r.tel.obsrep)
}

func (r *mmapReceiver) setLogs(next consumer.Logs) {
	r.consumers[ffi.Logs] = newLogsConsumer(next, r.tel.obsrep)
}

// enabledSignals lists the signals that have a pipeline; the rings of the
// others are left untouched.
func (r *mmapReceiver) enabledSignals() []ffi.Signal {
	var out []ffi.Signal
	for _, sig := range ffi.Signals {
		if r.consumers[sig] != nil {
			out = append(out, sig)
		}
	}
	return out
}

func (r *mmapReceiver) libraryOptions() ffi.Options {
	return ffi.Options{
		MaxInFlightSpans:       uint64(r.cfg.Traces.MaxInFlightSpans),
		MaxSpanAge:             r.cfg.Traces.MaxSpanAge,
		MaxBatchSpans:          uint64(r.cfg.Traces.MaxBatchSize),
		MaxBatchLogs:           uint64(r.cfg.Logs.MaxBatchSize),
		MetricCardinalityLimit: uint64(r.cfg.Metrics.CardinalityLimit),
		StuckSlotTimeout:       r.cfg.StuckSlotTimeout,
		Flat:                   true,
	}
}

// readerDeps are what each file reader is given.
func (r *mmapReceiver) readerDeps() readerDeps {
	var batchSize [3]uint64
	batchSize[ffi.Traces] = uint64(r.cfg.Traces.MaxBatchSize)
	batchSize[ffi.Logs] = uint64(r.cfg.Logs.MaxBatchSize)
	return readerDeps{
		logger:    r.logger,
		telemetry: r.tel,
		consumers: r.consumers,
		options: readerOptions{
			pollInterval:       r.cfg.PollInterval,
			flushTimeout:       max(r.cfg.FlushTimeout, r.cfg.PollInterval),
			maxSpanAge:         r.cfg.Traces.MaxSpanAge,
			collectionInterval: r.cfg.Metrics.CollectionInterval,
			retryInitial:       r.cfg.RetryOnFailure.InitialInterval,
			retryMax:           r.cfg.RetryOnFailure.MaxInterval,
			batchSize:          batchSize,
			deleteAfterDrain:   r.cfg.DeleteAfterDrain,
			checkpointInterval: r.cfg.CheckpointInterval,
		},
		finalOffer:  r.finalOffer,
		checkpoints: r.store,
		closed: func() {
			r.openFiles.Add(-1)
			r.tel.fileClosed()
		},
		poller: r.poller,
	}
}

// Start opens the files that match now and starts the scanner that picks up
// new files every scan_interval.
func (r *mmapReceiver) Start(startCtx context.Context, host component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return nil
	}
	if r.cfg.StorageID != nil {
		store, err := openCheckpoints(startCtx, host, *r.cfg.StorageID, r.id, r.logger, r.tel)
		if err != nil {
			return err
		}
		r.store = store
	}
	poller, err := startIdlePoller(r.cfg.PollInterval)
	if err != nil {
		return fmt.Errorf("mmap receiver: starting the idle poller: %w", err)
	}
	r.poller = poller
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
		r.tel.shutdown()
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
		r.poller.close() // every file reader has stopped
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
	if r.store != nil {
		err = errors.Join(err, r.store.close(ctx))
	}
	r.tel.shutdown()
	return err
}

// finalOffer gives the context and deadline of the offers made at shutdown.
func (r *mmapReceiver) finalOffer() (context.Context, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx := context.Background()
	deadline := time.Now().Add(finalOfferBudget)
	if r.shutdownCtx != nil {
		ctx = context.WithoutCancel(r.shutdownCtx)
		if d, ok := r.shutdownCtx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	return ctx, deadline
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
		r.poller.checkWriters()
		r.tel.recordGauges(files, r.enabledSignals())
	}
}

// discover lists the files that the globs match and the access settings
// allow, by path. Refusals are added to refused.
func (r *mmapReceiver) discover(refused map[string]string) map[string]access.Candidate {
	found := map[string]access.Candidate{}
	for _, path := range finder.FindFiles(r.cfg.Include, r.cfg.Exclude) {
		c, err := r.policy.Inspect(path)
		var refusal *access.RefusedError
		switch {
		case errors.As(err, &refusal):
			refused[path] = refusal.Reason
		case err == nil:
			found[path] = c
		}
	}
	return found
}

// scanLocked reconciles the open files with what the globs match now.
func (r *mmapReceiver) scanLocked(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	refused := map[string]string{}
	found := r.discover(refused)

	for path, fr := range r.files {
		select {
		case <-fr.done:
			// The reader gave up on the file (library error); open it
			// again below.
			delete(r.files, path)
			continue
		default:
		}
		if c, ok := found[path]; !ok || c.ID != fr.id {
			r.logger.Info("File no longer matches or was replaced; draining it", zap.String("path", path))
			fr.detach()
			if r.store != nil {
				// Its checkpoint is of a file that is no longer the path's.
				r.store.forget(ctx, path)
			}
			delete(r.files, path)
		}
	}
	for path := range r.openFailed {
		if _, ok := found[path]; !ok {
			delete(r.openFailed, path)
		}
	}

	paths := make([]string, 0, len(found))
	for path := range found {
		if _, open := r.files[path]; !open {
			paths = append(paths, path)
		}
	}
	sort.Strings(paths)
	overLimit := map[string]bool{}
	for _, path := range paths {
		if r.openFiles.Load() >= int64(r.cfg.MaxFiles) {
			overLimit[path] = true
			continue
		}
		r.open(ctx, found[path], refused)
	}
	r.noteRefusals(refused)
	r.noteOverLimit(overLimit)
}

// open opens one file and starts its reader.
func (r *mmapReceiver) open(ctx context.Context, c access.Candidate, refused map[string]string) {
	rd, err := r.openReader(c)
	var refusal *access.RefusedError
	switch {
	case errors.As(err, &refusal):
		refused[c.Path] = refusal.Reason
		return
	case errors.Is(err, access.ErrChanged):
		// Swapped for a link or another file since discovery looked at it:
		// the next scan looks again.
		r.logger.Debug("File changed between its check and its open; looking again at the next scan",
			zap.String("path", c.Path), zap.Error(err))
		return
	case err != nil:
		r.tel.openFailed()
		kind := failureKind(err)
		if prev, logged := r.openFailed[c.Path]; !logged || prev != kind {
			r.logger.Warn("Cannot open OTLP-MMAP file; will retry at later scans",
				zap.String("path", c.Path), zap.Error(err))
			r.openFailed[c.Path] = kind
		}
		return
	}
	if _, failedBefore := r.openFailed[c.Path]; failedBefore {
		r.logger.Info("Opened OTLP-MMAP file after earlier failures", zap.String("path", c.Path))
		delete(r.openFailed, c.Path)
	} else if r.overLimit[c.Path] {
		r.logger.Info("Opened OTLP-MMAP file that max_files had held back", zap.String("path", c.Path))
	} else {
		r.logger.Debug("Opened OTLP-MMAP file", zap.String("path", c.Path))
	}
	needsFirstCheckpoint := false
	if r.store != nil {
		// Before the reader reads anything: the state goes on from the checkpoint.
		needsFirstCheckpoint = r.store.restore(ctx, c.Path, rd)
	}
	fr := newFileReader(r.readerDeps(), c.Path, c.ID, rd)
	fr.needsFirstCheckpoint = needsFirstCheckpoint
	r.files[c.Path] = fr
	r.openFiles.Add(1)
	r.tel.fileOpened()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fr.run(ctx)
	}()
}

// openReader opens the candidate (checking the open descriptor) and hands
// the descriptor to the library, which keeps its own duplicate.
func (r *mmapReceiver) openReader(c access.Candidate) (*ffi.Reader, error) {
	f, err := r.policy.Open(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ffi.OpenFile(f, r.libraryOptions())
}

// failureKind tells open failures apart, so that a failure is logged again
// only when its kind changes.
func failureKind(err error) string {
	if code := ffi.Code(err); code != -1 {
		return fmt.Sprintf("library status %d", code)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// noteRefusals logs and counts each file that the access settings refuse,
// once for as long as it stays refused for the same reason.
func (r *mmapReceiver) noteRefusals(refused map[string]string) {
	for path, why := range refused {
		if r.refused[path] != why {
			r.logger.Warn("Not reading OTLP-MMAP file", zap.String("path", path), zap.String("reason", why))
			r.tel.openFailed()
		}
	}
	r.refused = refused
}

// noteOverLimit logs, in one line, the files that max_files newly holds
// back, and counts them; a file still held back at the next scan is not
// logged or counted again.
func (r *mmapReceiver) noteOverLimit(overLimit map[string]bool) {
	var fresh []string
	for path := range overLimit {
		if !r.overLimit[path] {
			fresh = append(fresh, path)
		}
	}
	r.overLimit = overLimit
	if len(fresh) == 0 {
		return
	}
	sort.Strings(fresh)
	r.tel.filesOverLimit(len(fresh))
	named := fresh[:min(len(fresh), maxPathsLogged)]
	r.logger.Warn("Not opening OTLP-MMAP files: max_files files are open already; they are opened when others close",
		zap.Int("max_files", r.cfg.MaxFiles), zap.Int("files", len(fresh)), zap.Strings("paths", named))
}
