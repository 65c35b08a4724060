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

	var wg sync.WaitGroup
	for _, sig := range fr.signals {
		wg.Go(func() { fr.loop(parent, sig) })
	}
	wg.Wait()

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

	// metrics only
	readAtCollect uint64    // records read+skipped at the last collection
	lastCollect   time.Time // time of the last collection
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

// loop reads one signal of the file until shutdown, failure, or - after the
// file went away - until everything left was delivered.
func (fr *fileReader) loop(parent context.Context, sig ffi.Signal) {
	cfg := fr.r.cfg
	l := &signalLoop{fr: fr, sig: sig, lastCollect: time.Now()}
	switch sig {
	case ffi.Traces:
		l.batchSize = uint64(cfg.Traces.MaxBatchSize)
	case ffi.Logs:
		l.batchSize = uint64(cfg.Logs.MaxBatchSize)
	}
	// After a partial batch, or records read without a batch, wait this long
	// so that the next batch is fuller: per-batch costs (cgo, pipeline,
	// wake-ups) then stay small next to per-record costs.
	fillWait := min(batchFillWait, cfg.PollInterval)
	refreshEvery := max(cfg.Metrics.CollectionInterval, minMetricsRefresh)
	retryDelay := cfg.RetryOnFailure.InitialInterval
	idle := time.Duration(0)
	drainCh := fr.drainCh
	draining := false
	collectDue := time.Now().Add(cfg.Metrics.CollectionInterval)
	collectPending := false

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	startDrain := func() {
		drainCh = nil
		draining = true
		switch sig {
		case ffi.Traces:
			// Nothing will end the spans of a file that is gone.
			if err := l.abandonSpans(); err != nil {
				fr.fail(err)
			}
		case ffi.Metrics:
			collectPending = true
		}
	}

	for {
		if fr.ctx.Err() != nil {
			if parent.Err() != nil && !fr.broken.Load() {
				l.finalOffer()
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
		if sig == ffi.Metrics {
			if now := time.Now(); collectPending || !now.Before(collectDue) {
				busy, err := l.collect(now, now.Sub(l.lastCollect) >= refreshEvery)
				if err != nil {
					fr.fail(err)
					continue
				}
				collectPending = busy
				if !busy {
					collectDue = now.Add(cfg.Metrics.CollectionInterval)
				}
			}
		}

		res, err := l.step(fr.ctx)
		if err != nil {
			fr.fail(err)
			continue
		}
		var wait time.Duration
		switch res {
		case stepDelivered:
			idle = 0
			retryDelay = cfg.RetryOnFailure.InitialInterval
			if l.lastFull || draining {
				continue // busy: read on at once
			}
			wait = fillWait
		case stepProgress:
			idle = 0
			if draining {
				continue
			}
			wait = fillWait
			if sig == ffi.Metrics && !collectPending {
				wait = max(min(wait, time.Until(collectDue)), 0)
			}
		case stepRefused:
			fr.r.tel.ReceiverMmapConsumeRetries.Add(context.Background(), 1, fr.r.signalAttrs[sig])
			wait = retryDelay
			retryDelay = min(2*retryDelay, cfg.RetryOnFailure.MaxInterval)
		case stepEmpty:
			if draining && !collectPending {
				return
			}
			idle = min(max(2*idle, minIdleSleep), cfg.PollInterval)
			wait = idle
			if sig == ffi.Metrics && !collectPending {
				wait = max(min(wait, time.Until(collectDue)), 0)
			}
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
