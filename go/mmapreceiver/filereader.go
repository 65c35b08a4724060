package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// fileReader reads one file: one goroutine per enabled signal, all sharing
// one library reader whose calls are serialized by mu.
type fileReader struct {
	r       *mmapReceiver
	path    string
	key     fileKey
	signals []ffi.Signal

	mu     sync.Mutex // guards rd, last and closed
	rd     *ffi.Reader
	last   ffi.Stats
	closed bool

	ctx    context.Context // ends at shutdown or when the file broke
	cancel context.CancelFunc
	broken atomic.Bool

	drainCh   chan struct{} // closed when the file went away
	drainOnce sync.Once
	failOnce  sync.Once
	done      chan struct{} // closed once the reader is closed
}

func newFileReader(r *mmapReceiver, path string, key fileKey, rd *ffi.Reader, signals []ffi.Signal) *fileReader {
	return &fileReader{
		r:       r,
		path:    path,
		key:     key,
		signals: signals,
		rd:      rd,
		drainCh: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// requestDrain asks the loops to deliver what is left and close the file.
func (fr *fileReader) requestDrain() {
	fr.drainOnce.Do(func() { close(fr.drainCh) })
}

// fail gives up on the file after a library error; the scanner opens it
// again at its next pass.
func (fr *fileReader) fail(err error) {
	fr.failOnce.Do(func() {
		fr.r.set.Logger.Warn("OTLP-MMAP reader failed; closing the file, it is reopened at the next scan",
			zap.String("path", fr.path), zap.Error(err))
		fr.broken.Store(true)
		fr.cancel()
	})
}

func (fr *fileReader) run(parent context.Context) {
	defer close(fr.done)
	fr.ctx, fr.cancel = context.WithCancel(parent)
	defer fr.cancel()

	fr.loop(parent)

	fr.mu.Lock()
	if s, err := fr.rd.Stats(); err == nil {
		fr.r.recordStatsDelta(&fr.last, &s)
		fr.last = s
	}
	if err := fr.rd.Close(); err != nil {
		fr.r.set.Logger.Warn("Closing OTLP-MMAP reader failed", zap.String("path", fr.path), zap.Error(err))
	}
	fr.closed = true
	fr.mu.Unlock()
	fr.r.tel.ReceiverMmapOpenFiles.Add(context.Background(), -1)
	fr.r.set.Logger.Debug("Closed OTLP-MMAP file", zap.String("path", fr.path))
}

// refreshStats reads the library counters and records what grew since the
// previous call. ok is false once the file is closed.
func (fr *fileReader) refreshStats() (s ffi.Stats, ok bool) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if fr.closed {
		return s, false
	}
	s, err := fr.rd.Stats()
	if err != nil {
		return s, false
	}
	fr.r.recordStatsDelta(&fr.last, &s)
	fr.last = s
	return s, true
}

type stepResult int

const (
	stepEmpty     stepResult = iota // nothing delivered, nothing read
	stepProgress                    // nothing delivered, but records were read
	stepDelivered                   // a batch was accepted (or dropped for good) and committed
	stepRefused                     // the consumer refused with a retryable error
)

// signalLoop is the state of one signal's loop.
type signalLoop struct {
	fr        *fileReader
	sig       ffi.Signal
	lastRead  uint64 // records taken from the ring at the previous poll
	lastFull  bool   // the last delivered batch was full
	batchSize uint64 // the signal's max_batch_size (0: no limit)

	// schedule
	nextAt       time.Time     // when the signal is due again
	done         bool          // drained after the file went away
	draining     bool          // the file went away
	idle         time.Duration // current idle backoff
	retryDelay   time.Duration // next wait after a refusal
	fillWait     time.Duration // wait after a partial batch
	refreshEvery time.Duration // re-send unchanged metrics at least this often

	// metrics only
	readAtCollect  uint64    // records read+skipped at the last collection
	lastCollect    time.Time // time of the last collection
	collectDue     time.Time // next collection
	collectPending bool      // a collection is owed (busy, or the file went away)
}

// step polls the signal once and, when a batch comes back, offers it to the
// next consumer and commits it once it was accepted or refused for good.
func (l *signalLoop) step(ctx context.Context) (stepResult, error) {
	fr, r := l.fr, l.fr.r
	fr.mu.Lock()
	b, ok, err := fr.rd.Poll(l.sig, time.Now())
	if err != nil {
		fr.mu.Unlock()
		return stepEmpty, err
	}
	if !ok {
		fr.mu.Unlock()
		if b.RecordsConsumed != l.lastRead {
			l.lastRead = b.RecordsConsumed
			return stepProgress, nil
		}
		return stepEmpty, nil
	}
	l.lastRead = b.RecordsConsumed
	l.lastFull = b.Items >= l.batchSize
	// The bytes are only valid until the next poll/commit: unmarshal (which
	// copies) before anything else happens to this ring.
	p, uerr := unmarshal(l.sig, b.Data)
	fr.mu.Unlock()

	if uerr != nil {
		// The library handed out bytes that do not decode: waiting will
		// not fix that, so drop the batch and keep the file flowing.
		r.set.Logger.Error("Dropping a batch that does not decode",
			zap.String("path", fr.path), zap.Stringer("signal", l.sig), zap.Uint64("items", b.Items), zap.Error(uerr))
		r.tel.ReceiverMmapDroppedItems.Add(context.Background(), int64(b.Items), r.signalAttrs[l.sig])
	} else if count(l.sig, p) > 0 {
		n, cerr := r.consume(ctx, l.sig, p)
		if cerr != nil {
			if !consumererror.IsPermanent(cerr) {
				return stepRefused, nil
			}
			r.tel.ReceiverMmapDroppedItems.Add(context.Background(), int64(n), r.signalAttrs[l.sig])
			r.set.Logger.Debug("Next consumer refused a batch permanently; dropped",
				zap.String("path", fr.path), zap.Stringer("signal", l.sig), zap.Int("items", n), zap.Error(cerr))
		}
	}

	fr.mu.Lock()
	err = fr.rd.Commit(l.sig, b.Token)
	fr.mu.Unlock()
	if err != nil {
		return stepEmpty, err
	}
	return stepDelivered, nil
}

func count(sig ffi.Signal, p payload) int {
	switch sig {
	case ffi.Traces:
		return p.traces.SpanCount()
	case ffi.Logs:
		return p.logs.LogRecordCount()
	case ffi.Metrics:
		return p.metrics.DataPointCount()
	}
	return 0
}

// collect snapshots the metric aggregates into a batch, but only when
// measurements arrived since the previous collection or refresh is set:
// otherwise every cumulative value would be the same as last sent. busy is
// true while the previous metrics batch is not committed yet.
func (l *signalLoop) collect(now time.Time, refresh bool) (busy bool, err error) {
	l.fr.mu.Lock()
	defer l.fr.mu.Unlock()
	s, err := l.fr.rd.Stats()
	if err != nil {
		return false, err
	}
	read := s.RecordsRead[ffi.Metrics] + s.CorruptRecords[ffi.Metrics]
	if read == l.readAtCollect && !refresh {
		return false, nil
	}
	busy, err = l.fr.rd.CollectMetrics(now)
	if err != nil || busy {
		return busy, err
	}
	l.readAtCollect = read
	l.lastCollect = now
	return false, nil
}

func (l *signalLoop) abandonSpans() error {
	l.fr.mu.Lock()
	defer l.fr.mu.Unlock()
	return l.fr.rd.AbandonSpans(time.Now())
}

// loop reads every signal of the file in one goroutine until shutdown,
// failure, or - after the file went away - until everything left was
// delivered. Each signal keeps its own schedule (backoff after a refusal,
// idle backoff, fill wait, metrics collection); the goroutine sleeps until the
// earliest one is due, so an idle file costs one wake-up per poll_interval,
// whatever the number of signals.
func (fr *fileReader) loop(parent context.Context) {
	cfg := fr.r.cfg
	loops := make([]*signalLoop, 0, len(fr.signals))
	for _, sig := range fr.signals {
		loops = append(loops, newSignalLoop(fr, sig))
	}
	drainCh := fr.drainCh
	slack := cfg.PollInterval / 4

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	startDrain := func() {
		drainCh = nil
		for _, l := range loops {
			l.startDrain()
		}
	}

	for {
		if fr.ctx.Err() != nil {
			if parent.Err() != nil && !fr.broken.Load() {
				for _, l := range loops {
					l.finalOffer()
				}
			}
			return
		}
		if drainCh != nil {
			select {
			case <-drainCh:
				startDrain()
			default:
			}
		}
		now := time.Now()
		wait := cfg.PollInterval
		active := false
		for _, l := range loops {
			if l.done {
				continue
			}
			active = true
			// A signal due within the slack is served now too, so that the
			// signals of an idle file share one wake-up.
			if now.Add(slack).Before(l.nextAt) {
				wait = min(wait, l.nextAt.Sub(now))
				continue
			}
			w, done := l.tick()
			if done {
				l.done = true
				continue
			}
			l.nextAt = time.Now().Add(w)
			wait = min(wait, w)
		}
		if !active {
			return
		}
		if wait <= 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-fr.ctx.Done():
		case <-drainCh:
			startDrain()
		case <-timer.C:
		}
		timer.Stop()
	}
}

func newSignalLoop(fr *fileReader, sig ffi.Signal) *signalLoop {
	cfg := fr.r.cfg
	l := &signalLoop{
		fr:          fr,
		sig:         sig,
		lastCollect: time.Now(),
		// After a partial batch, or records read without a batch, wait this
		// long so that the next batch is fuller: per-batch costs (cgo,
		// pipeline, wake-ups) then stay small next to per-record costs.
		fillWait:     min(batchFillWait, cfg.PollInterval),
		refreshEvery: max(cfg.Metrics.CollectionInterval, minMetricsRefresh),
		retryDelay:   cfg.RetryOnFailure.InitialInterval,
		collectDue:   time.Now().Add(cfg.Metrics.CollectionInterval),
	}
	switch sig {
	case ffi.Traces:
		l.batchSize = uint64(cfg.Traces.MaxBatchSize)
	case ffi.Logs:
		l.batchSize = uint64(cfg.Logs.MaxBatchSize)
	}
	return l
}

// startDrain: the file went away; deliver what is left, then stop.
func (l *signalLoop) startDrain() {
	l.draining = true
	switch l.sig {
	case ffi.Traces:
		// Nothing will end the spans of a file that is gone.
		if err := l.abandonSpans(); err != nil {
			l.fr.fail(err)
		}
	case ffi.Metrics:
		l.collectPending = true
	}
}

// tick does one round of the signal's work and says how long to wait before
// the next one; done is true once a draining signal has nothing left.
func (l *signalLoop) tick() (wait time.Duration, done bool) {
	fr, cfg := l.fr, l.fr.r.cfg
	if l.sig == ffi.Metrics {
		if now := time.Now(); l.collectPending || !now.Before(l.collectDue) {
			busy, err := l.collect(now, now.Sub(l.lastCollect) >= l.refreshEvery)
			if err != nil {
				fr.fail(err)
				return 0, false
			}
			l.collectPending = busy
			if !busy {
				l.collectDue = now.Add(cfg.Metrics.CollectionInterval)
			}
		}
	}

	res, err := l.step(fr.ctx)
	if err != nil {
		fr.fail(err)
		return 0, false
	}
	switch res {
	case stepDelivered:
		l.idle = 0
		l.retryDelay = cfg.RetryOnFailure.InitialInterval
		if l.lastFull || l.draining {
			return 0, false // busy: read on at once
		}
		wait = l.fillWait
	case stepProgress:
		l.idle = 0
		if l.draining {
			return 0, false
		}
		wait = l.fillWait
	case stepRefused:
		fr.r.tel.ReceiverMmapConsumeRetries.Add(context.Background(), 1, fr.r.signalAttrs[l.sig])
		wait = l.retryDelay
		l.retryDelay = min(2*l.retryDelay, cfg.RetryOnFailure.MaxInterval)
		return wait, false
	case stepEmpty:
		if l.draining && !l.collectPending {
			return 0, true
		}
		l.idle = min(max(2*l.idle, minIdleSleep), cfg.PollInterval)
		wait = l.idle
	}
	if l.sig == ffi.Metrics && !l.collectPending {
		wait = max(min(wait, time.Until(l.collectDue)), 0)
	}
	return wait, false
}

// finalOffer runs at shutdown: it reads what is left of the ring and offers
// each pending batch once (no retries); metrics are collected one last time.
// Whatever is refused stays uncommitted in the file.
func (l *signalLoop) finalOffer() {
	r := l.fr.r
	ctx := r.finalContext()
	deadline := r.finalDeadline()

	// drainRing polls until the ring has nothing more to give; false means
	// stop offering (refusal, error or out of time).
	drainRing := func() bool {
		for time.Now().Before(deadline) {
			res, err := l.step(ctx)
			if err != nil {
				r.set.Logger.Debug("Final read failed", zap.String("path", l.fr.path), zap.Error(err))
				return false
			}
			switch res {
			case stepRefused:
				return false
			case stepEmpty:
				return true
			}
		}
		return false
	}

	if !drainRing() || l.sig != ffi.Metrics {
		return
	}
	for range 2 {
		busy, err := l.collect(time.Now(), false)
		if err != nil || !drainRing() || !busy {
			return
		}
		// A batch from an earlier collection was still pending and has
		// just been delivered: collect once more for the latest values.
	}
}
