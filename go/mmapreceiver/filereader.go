package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/otelcol-mmap/mmapreceiver/internal/access"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

const (
	// minIdleSleep is the first sleep after a reader found nothing to do;
	// it doubles while the file stays idle, and once it reaches
	// poll_interval the file parks with the idle poller.
	minIdleSleep = 50 * time.Microsecond
	// minMetricsRefresh: a file whose metrics ring got no new measurement
	// since the previous collection is collected again (re-sending the
	// unchanged cumulative values) only after this long, or after
	// collection_interval when that is longer.
	minMetricsRefresh = time.Minute
	// parkedPollInterval: a parked file is polled at least this often (or
	// every traces::max_span_age when that is shorter) even when nothing was
	// written, for the work that needs no new record (spans in flight past
	// traces::max_span_age). A writer that goes away wakes it at the next
	// scan (idlePoller.checkWriters), which also checks every scan_interval
	// whether the file is still the one at its path.
	parkedPollInterval = time.Minute
)

// readerOptions are the settings of every file reader, from Config.
type readerOptions struct {
	pollInterval       time.Duration
	flushTimeout       time.Duration // at least pollInterval
	maxSpanAge         time.Duration // traces::max_span_age (0: no traces)
	collectionInterval time.Duration
	retryInitial       time.Duration
	retryMax           time.Duration
	batchSize          [3]uint64 // per signal; 0: no limit (metrics)
	deleteAfterDrain   bool      // remove a dead writer's file once drained
	checkpointInterval time.Duration
}

// readerDeps is what a file reader uses besides its file; the receiver
// provides them.
type readerDeps struct {
	logger    *zap.Logger
	telemetry *telemetry
	// consumers holds the pipeline of each signal; a signal without one is
	// not read.
	consumers [3]signalConsumer
	options   readerOptions
	// finalOffer returns the context and deadline of the last offers made
	// at shutdown.
	finalOffer func() (context.Context, time.Time)
	// closed is called once the reader has closed its file.
	closed func()
	// checkpoints keeps the reader's state across restarts (nil: the
	// storage key is not set).
	checkpoints *checkpoints
	// poller watches the file while it is idle.
	poller *idlePoller
}

// fileReader reads one file: one goroutine serves every enabled signal, all
// through one library reader whose calls are serialized by mu.
type fileReader struct {
	deps    readerDeps
	path    string
	id      access.FileID
	signals []ffi.Signal
	read    ffi.SignalSet // the signals in a set
	wake    chan struct{} // the idle poller's wake-up (cap 1)
	token   uint64        // the file's name at the idle poller (0: none yet)

	mu     sync.Mutex // guards rd, last and closed
	rd     *ffi.Reader
	last   ffi.Stats
	drops  dropWarner
	closed bool

	ctx    context.Context // ends at shutdown or when the file broke
	cancel context.CancelFunc
	broken atomic.Bool
	// writerGone is set once the library reports the writer gone (with
	// delete_after_drain): the file is drained, then removed.
	writerGone atomic.Bool
	// detached is set when the path no longer leads to this reader's file
	// (or no longer matches): its state is no longer checkpointed under the
	// path, which may be another file's now.
	detached atomic.Bool
	// storeMu is held by every storage write under the path
	// (storeWhileAttached) and by detach: once detach returned, nothing of
	// this reader is stored under the path any more (the next file's first
	// checkpoint there is not overwritten by a write already under way).
	storeMu sync.Mutex
	// needsFirstCheckpoint: no checkpoint was restored; run stores one of
	// the state as opened before it reads anything.
	needsFirstCheckpoint bool

	// With storage: traces and metrics batches committed, and what the last
	// stored checkpoint had seen (records taken, commits, writer restarts
	// in place: a file that did not change since is not checkpointed again).
	commits        atomic.Uint64
	checkpointSeen [3]uint64
	// Span events and measurements taken from each ring when the last
	// checkpoint was stored (the rings hold what was taken since).
	consumedAtCheckpoint [2]uint64
	checkpointWarn       bool
	// markerWarn: a failed delivery marker store was logged; set again
	// after one succeeds, so that repeated failures log once.
	markerWarn bool

	drainCh   chan struct{} // closed when the file went away
	drainOnce sync.Once
	failOnce  sync.Once
	done      chan struct{} // closed once the reader is closed
}

func newFileReader(deps readerDeps, path string, id access.FileID, rd *ffi.Reader) *fileReader {
	var signals []ffi.Signal
	var read ffi.SignalSet
	for _, sig := range ffi.Signals {
		if deps.consumers[sig] != nil {
			signals = append(signals, sig)
			read = read.With(sig)
		}
	}
	return &fileReader{
		deps:    deps,
		path:    path,
		id:      id,
		signals: signals,
		read:    read,
		wake:    make(chan struct{}, 1),
		rd:      rd,
		drainCh: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// detach: the path was replaced or no longer matches; deliver what is left
// and close the file without checkpoints (the next reader of the path is
// another file's, or none).
func (fr *fileReader) detach() {
	fr.storeMu.Lock()
	fr.detached.Store(true)
	fr.storeMu.Unlock()
	fr.requestDrain()
}

// storeWhileAttached runs write, a storage write under the reader's path,
// unless the reader was detached; false when it did not run.
func (fr *fileReader) storeWhileAttached(write func() error) (bool, error) {
	fr.storeMu.Lock()
	defer fr.storeMu.Unlock()
	if fr.detached.Load() {
		return false, nil
	}
	return true, write()
}

// keepsCheckpoints says whether the reader's state is stored under its path.
func (fr *fileReader) keepsCheckpoints() bool {
	return fr.deps.checkpoints != nil && !fr.detached.Load()
}

// requestDrain asks the loops to deliver what is left and close the file.
func (fr *fileReader) requestDrain() {
	fr.drainOnce.Do(func() { close(fr.drainCh) })
}

// fail gives up on the file after a library error; the scanner opens it
// again at its next pass.
func (fr *fileReader) fail(err error) {
	fr.failOnce.Do(func() {
		fr.deps.logger.Warn("OTLP-MMAP reader failed; closing the file, it is reopened at the next scan",
			zap.String("path", fr.path), zap.Error(err))
		fr.broken.Store(true)
		fr.cancel()
	})
}

func (fr *fileReader) run(parent context.Context) {
	defer close(fr.done)
	fr.ctx, fr.cancel = context.WithCancel(parent)
	defer fr.cancel()

	if fr.needsFirstCheckpoint {
		fr.mu.Lock()
		fr.storeFirstCheckpoint()
		fr.mu.Unlock()
	}
	fr.loop(parent)

	fr.mu.Lock()
	if fr.writerGone.Load() && parent.Err() == nil && !fr.broken.Load() {
		fr.removeIfDrained()
	}
	if fr.keepsCheckpoints() && parent.Err() == nil && !fr.broken.Load() {
		// The reader ended for good (its writer is gone and the file
		// drained): a checkpoint of it would only be stale. A broken reader
		// keeps its last checkpoint for the reader the next scan opens.
		_, _ = fr.storeWhileAttached(func() error {
			fr.deps.checkpoints.forget(context.Background(), fr.path)
			return nil
		})
	}
	if s, err := fr.rd.Stats(); err == nil {
		fr.deps.telemetry.recordStatsDelta(&fr.last, &s)
		fr.drops.observe(fr.deps.logger, fr.path, &s, time.Now(), true)
		fr.last = s
	}
	if err := fr.rd.Close(); err != nil {
		fr.deps.logger.Warn("Closing OTLP-MMAP reader failed", zap.String("path", fr.path), zap.Error(err))
	}
	fr.closed = true
	fr.mu.Unlock()
	fr.deps.closed()
	fr.deps.logger.Debug("Closed OTLP-MMAP file", zap.String("path", fr.path))
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
	fr.deps.telemetry.recordStatsDelta(&fr.last, &s)
	fr.drops.observe(fr.deps.logger, fr.path, &s, time.Now(), false)
	fr.last = s
	if s.WriterAlive == 0 && fr.deps.options.deleteAfterDrain && !fr.writerGone.Swap(true) {
		// Deliver what is left, then remove the file (run).
		fr.requestDrain()
	}
	if s.WriterAlive == -1 && fr.deps.options.deleteAfterDrain && !fr.writerGone.Load() {
		fr.presumeWriterGone()
	}
	return s, true
}

// removeIfDrained removes the file of a writer that is gone once everything
// in it was delivered (delete_after_drain); fr.mu is held. A file that
// stays is closed all the same: the next scan opens it again if it is
// still there.
func (fr *fileReader) removeIfDrained() {
	if c := fr.deps.checkpoints; c != nil {
		// A checkpoint covering everything read gives the held records back
		// (not stored once detached).
		if _, err := fr.storeWhileAttached(func() error { return c.save(context.Background(), fr.path, fr.rd) }); err != nil {
			fr.deps.logger.Warn("Cannot store the checkpoint of a drained file; keeping the file", zap.String("path", fr.path), zap.Error(err))
			return
		}
	}
	removed, why, err := fr.rd.RemoveIfDrained(fr.signals)
	switch {
	case err != nil:
		fr.deps.logger.Warn("Cannot delete the drained file of a writer that is gone (delete_after_drain)",
			zap.String("path", fr.path), zap.Error(err))
	case !removed:
		fr.deps.logger.Debug("Not deleting the file of a writer that is gone", zap.String("path", fr.path), zap.String("reason", why))
	default:
		fr.deps.logger.Info("Deleted the file of a writer that is gone: everything in it was delivered (delete_after_drain)",
			zap.String("path", fr.path))
		fr.deps.telemetry.fileDeleted()
	}
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
	consumer  signalConsumer
	lastRead  uint64 // records taken from the ring at the previous poll
	lastFull  bool   // the last delivered batch was full
	lastItems uint64 // items in the last delivered batch
	batchSize uint64 // the signal's max_batch_size (0: no limit)
	// flat holds the string table of the signal's flat batches.
	flat flat.Decoder

	// schedule
	nextAt       time.Time     // when the signal is due again
	parkable     bool          // idle long enough to leave to the idle poller
	done         bool          // drained after the file went away
	draining     bool          // the file went away
	idle         time.Duration // current idle backoff
	retryDelay   time.Duration // next wait after a refusal
	refreshEvery time.Duration // re-send unchanged metrics at least this often

	// metrics only
	readAtCollect  uint64    // records read+skipped at the last collection
	takenAtCollect uint64    // lastRead (records taken from the ring) then
	lastCollect    time.Time // time of the last collection
	collectDue     time.Time // next collection
	collectPending bool      // a collection is owed (busy, or the file went away)
	polledAt       time.Time // time of the last poll
	// wakeAt: measurements that may gather in the ring while the file is
	// parked before it is woken to read them (0: the first wakes it).
	wakeAt uint64
}

// step polls the signal once and, when a batch comes back, offers it to the
// next consumer and commits it once it was accepted or refused for good.
func (l *signalLoop) step(ctx context.Context) (stepResult, error) {
	fr := l.fr
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
	l.lastItems = b.Items
	// The bytes are only valid until the next poll/commit: unmarshal (which
	// copies) before anything else happens to this ring.
	batch, uerr := l.consumer.unmarshal(&l.flat, b.Data)
	if uerr != nil && l.sig != ffi.Metrics {
		// Later flat batches would refer to strings this one brought.
		err = fr.rd.StartFlatOver(l.sig)
	}
	fr.mu.Unlock()
	if err != nil {
		return stepEmpty, err
	}

	if uerr != nil {
		// The library handed out bytes that do not decode: waiting will
		// not fix that, so drop the batch and keep the file flowing.
		fr.deps.logger.Error("Dropping a batch that does not decode",
			zap.String("path", fr.path), zap.Stringer("signal", l.sig), zap.Uint64("items", b.Items), zap.Error(uerr))
		fr.deps.telemetry.droppedItems(l.sig, int(b.Items))
	} else if batch.items > 0 {
		if cerr := batch.consume(ctx); cerr != nil {
			if !consumererror.IsPermanent(cerr) {
				return stepRefused, nil
			}
			fr.deps.telemetry.droppedItems(l.sig, batch.items)
			fr.deps.logger.Debug("Next consumer refused a batch permanently; dropped",
				zap.String("path", fr.path), zap.Stringer("signal", l.sig), zap.Int("items", batch.items), zap.Error(cerr))
		}
	}

	fr.mu.Lock()
	err = fr.rd.Commit(l.sig, b.Token)
	if err == nil {
		fr.markDelivered(l.sig)
	}
	fr.mu.Unlock()
	if l.sig != ffi.Logs {
		fr.commits.Add(1)
	}
	if err != nil {
		return stepEmpty, err
	}
	return stepDelivered, nil
}

// collect snapshots the metric aggregates into a batch, but only when
// measurements arrived since the previous collection or refresh is set:
// otherwise every cumulative value would be the same as last sent. busy is
// true while the previous metrics batch is not committed yet.
func (l *signalLoop) collect(now time.Time, refresh bool) (busy bool, err error) {
	l.fr.mu.Lock()
	defer l.fr.mu.Unlock()
	// Measurements still in the ring are new too (a parked file leaves them
	// there until its collection): read them before counting.
	if err := l.fr.rd.ReadMeasurements(now); err != nil {
		return false, err
	}
	read, err := l.metricsRead()
	if err != nil {
		return false, err
	}
	if read == l.readAtCollect && !refresh {
		l.takenAtCollect = l.lastRead // nothing new up to here
		return false, nil
	}
	busy, err = l.fr.rd.CollectMetrics(now)
	if err != nil || busy {
		return busy, err
	}
	// Counted again: the collection read on up to its snapshot, and what
	// it read is in it (a stale count would collect the same values again).
	if read, err = l.metricsRead(); err != nil {
		return false, err
	}
	l.readAtCollect = read
	l.takenAtCollect = l.lastRead
	l.lastCollect = now
	return false, nil
}

// metricsRead is the measurement slots consumed so far: read, found
// corrupt, or skipped as abandoned (claimed by a writer that never
// published them), as the library's drained check counts them. A skipped
// slot left out would leave a dead writer's file "not drained" when it is
// the last thing read after a collection. The caller holds fr.mu.
func (l *signalLoop) metricsRead() (uint64, error) {
	s, err := l.fr.rd.Stats()
	if err != nil {
		return 0, err
	}
	return s.Consumed(ffi.Metrics), nil
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
// earliest one is due. Once every signal is idle, the file parks with the
// idle poller (no timer of its own) until records arrive, its writer goes
// away, or its next deadline (metrics collection, a checkpoint owed,
// parkedPollInterval) comes.
func (fr *fileReader) loop(parent context.Context) {
	opts := fr.deps.options
	loops := make([]*signalLoop, 0, len(fr.signals))
	for _, sig := range fr.signals {
		loops = append(loops, newSignalLoop(fr, sig))
	}
	drainCh := fr.drainCh
	slack := opts.pollInterval / 4

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var nextCheckpoint time.Time
	if fr.deps.checkpoints != nil {
		nextCheckpoint = time.Now().Add(opts.checkpointInterval)
	}
	defer fr.deps.poller.forget(fr)

	startDrain := func() {
		drainCh = nil
		if fr.deps.checkpoints != nil && fr.detached.Load() {
			// No checkpoint will cover what is read from now on: release it
			// as it is read.
			fr.mu.Lock()
			err := fr.rd.HoldUntilCheckpoint(false)
			fr.mu.Unlock()
			if err != nil {
				fr.fail(err)
			}
		}
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
				fr.saveCheckpoint()
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
		wait := opts.flushTimeout
		if fr.keepsCheckpoints() {
			if dueNow, _ := fr.checkpointState(); dueNow || !now.Before(nextCheckpoint) {
				fr.checkpointIfChanged(fr.ctx)
				nextCheckpoint = now.Add(opts.checkpointInterval)
			}
			wait = min(wait, nextCheckpoint.Sub(now))
		}
		active := false
		parkable := true
		for _, l := range loops {
			if l.done {
				continue
			}
			active = true
			// A signal due within the slack is served now too, so that the
			// signals of an idle file share one wake-up.
			if now.Add(slack).Before(l.nextAt) {
				wait = min(wait, l.nextAt.Sub(now))
				parkable = parkable && l.parkable
				continue
			}
			w, done := l.tick()
			if done {
				l.done = true
				parkable = false // look again at once: maybe every signal is done
				continue
			}
			l.nextAt = time.Now().Add(w)
			wait = min(wait, w)
			parkable = parkable && l.parkable
		}
		if !active {
			return
		}
		if parkable && fr.park(loops, drainCh, startDrain, nextCheckpoint) {
			continue
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

// park leaves the file to the idle poller until it has records to read,
// its next deadline comes, the file goes away or the receiver stops; then
// every signal is polled. With storage, a checkpoint still owed (records
// read or batches committed since the last stored one) is a deadline too:
// nextCheckpoint; one due now (checkpointState) keeps the file from
// parking. false: the file could not be parked.
func (fr *fileReader) park(loops []*signalLoop, drainCh <-chan struct{}, startDrain func(), nextCheckpoint time.Time) bool {
	wait := parkedPollInterval
	if age := fr.deps.options.maxSpanAge; age > 0 && fr.read.Has(ffi.Traces) {
		wait = min(wait, age)
	}
	due := time.Now().Add(wait)
	var wakeAt [3]uint64
	for _, l := range loops {
		if l.done {
			continue
		}
		wakeAt[l.sig] = l.wakeAt
		switch {
		case l.sig == ffi.Metrics:
			due = minTime(due, l.nextCollection())
		case l.wakeAt > 0: // waiting for a batch to fill
			due = minTime(due, l.nextAt)
		}
	}
	if fr.keepsCheckpoints() {
		dueNow, owed := fr.checkpointState()
		if dueNow {
			return false // the loop stores it first
		}
		if owed {
			due = minTime(due, nextCheckpoint)
		}
	}
	if !fr.deps.poller.park(fr, due, wakeAt) {
		return false
	}
	select {
	case <-fr.ctx.Done():
	case <-drainCh:
		startDrain()
	case <-fr.wake:
	}
	fr.deps.poller.unpark(fr)
	for _, l := range loops {
		l.nextAt = time.Time{}
	}
	return true
}

// nextCollection is when a parked file's metrics need collecting: at
// collection_interval when measurements came since the last collection,
// otherwise only for the periodic re-send of unchanged values (new
// measurements wake the file anyway).
func (l *signalLoop) nextCollection() time.Time {
	if l.lastRead != l.takenAtCollect {
		return l.collectDue
	}
	return maxTime(l.collectDue, l.lastCollect.Add(l.refreshEvery))
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func newSignalLoop(fr *fileReader, sig ffi.Signal) *signalLoop {
	opts := fr.deps.options
	return &signalLoop{
		fr:           fr,
		sig:          sig,
		consumer:     fr.deps.consumers[sig],
		batchSize:    opts.batchSize[sig],
		lastCollect:  time.Now(),
		refreshEvery: max(opts.collectionInterval, minMetricsRefresh),
		retryDelay:   opts.retryInitial,
		collectDue:   time.Now().Add(opts.collectionInterval),
	}
}

// startDrain: the file went away; deliver what is left, then stop.
func (l *signalLoop) startDrain() {
	l.draining = true
	l.parkable = false
	l.nextAt = time.Time{} // at once
	switch l.sig {
	case ffi.Traces:
		// Nothing will end the spans of a file that is gone. When its
		// writer is gone, the library gives them up itself once the ring is
		// empty, so that an end still in the ring is read first.
		if l.fr.writerGone.Load() {
			break
		}
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
	fr, opts := l.fr, l.fr.deps.options
	l.parkable = false
	l.wakeAt = 0
	// Continuous traffic: the previous poll of this signal found records
	// (after a park of an idle file it did not, and the time since then says
	// nothing about the rate).
	continuous := l.idle == 0 && !l.polledAt.IsZero()
	takenBefore, polledBefore := l.lastRead, l.polledAt
	l.polledAt = time.Now()
	if l.sig == ffi.Metrics {
		if now := time.Now(); l.collectPending || !now.Before(l.collectDue) {
			busy, err := l.collect(now, now.Sub(l.lastCollect) >= l.refreshEvery)
			if err != nil {
				fr.fail(err)
				return 0, false
			}
			l.collectPending = busy
			if !busy {
				l.collectDue = now.Add(opts.collectionInterval)
			}
		}
	}

	// A batch being offered when the Collector stops is not cancelled: the
	// next consumer may have taken it already, and a cancelled offer is
	// offered again at the final offer (a duplicate).
	res, err := l.step(context.WithoutCancel(fr.ctx))
	if err != nil {
		fr.fail(err)
		return 0, false
	}
	switch res {
	case stepDelivered:
		l.idle = 0
		l.retryDelay = opts.retryInitial
		if l.lastFull || l.draining {
			return 0, false // busy: read on at once
		}
		wait = l.waitToFill(continuous, l.lastItems, l.lastRead-takenBefore, polledBefore)
	case stepProgress:
		l.idle = 0
		if l.draining {
			return 0, false
		}
		wait = l.waitToFill(continuous, 0, l.lastRead-takenBefore, polledBefore)
		if l.sig == ffi.Metrics && !l.collectPending {
			l.wakeAt = l.measurementsBatch(l.lastRead-takenBefore, l.polledAt.Sub(polledBefore))
			l.parkable = l.wakeAt > 0
		}
	case stepRefused:
		fr.deps.telemetry.consumeRetry(l.sig)
		wait = l.retryDelay
		l.retryDelay = min(2*l.retryDelay, opts.retryMax)
		return wait, false
	case stepEmpty:
		if l.draining && !l.collectPending {
			return 0, true
		}
		// Up to flush_timeout: an idle signal of a file that stays awake
		// for another one is polled on about that one's schedule (a file
		// whose signals are all idle parks once each waited poll_interval).
		l.idle = min(max(2*l.idle, minIdleSleep), opts.flushTimeout)
		wait = l.idle
		l.parkable = !l.draining && !l.collectPending && l.idle >= opts.pollInterval
	}
	if l.sig == ffi.Metrics && !l.collectPending {
		wait = max(min(wait, time.Until(l.collectDue)), 0)
	}
	return wait, false
}

// waitToFill says how long to wait after a partial batch of items (0:
// records read without a batch), taken records after the poll at
// polledBefore, before reading again. Every wake-up costs the Collector far
// more than a record (the Go scheduler, thread switches, the cgo call:
// ~0.4 ms of CPU on a 2-core VM), so continuous traffic is read in batches
// as full as flush_timeout allows (fillWaitFor). A wait longer than
// poll_interval is spent parked with the watcher, which wakes the file
// early once the ring gathered a quarter of its slots (a burst), so that a
// writer does not find it full. Metrics keep poll_interval (their
// measurements are gathered by measurementsBatch); so does traffic that is
// not continuous (the first records after a silence).
func (l *signalLoop) waitToFill(continuous bool, items, taken uint64, polledBefore time.Time) time.Duration {
	opts := l.fr.deps.options
	elapsed := l.polledAt.Sub(polledBefore)
	if !continuous || l.sig == ffi.Metrics || opts.flushTimeout <= opts.pollInterval || elapsed <= 0 || taken == 0 {
		return opts.pollInterval
	}
	c, held, ok := l.ringFill()
	if !ok {
		return opts.pollInterval
	}
	r := fillRate{items: items, records: taken, batchSize: l.batchSize, ringCapacity: c, ringHeld: held}
	wait := fillWaitFor(opts.pollInterval, opts.flushTimeout, elapsed, r)
	if wait > opts.pollInterval {
		// Parked until the wait ends or the ring gathered what it may.
		l.wakeAt = max(r.ringCapacity/4-r.ringHeld, 1)
		l.parkable = true
	}
	return wait
}

// ringFill returns the signal's ring capacity and the slots it still holds
// (read or not); ok is false when the library cannot say.
func (l *signalLoop) ringFill() (capacity, held uint64, ok bool) {
	l.fr.mu.Lock()
	s, err := l.fr.rd.Stats()
	l.fr.mu.Unlock()
	if err != nil {
		return 0, 0, false
	}
	return s.RingCapacity[l.sig], s.RingUnread[l.sig], true
}

// fillRate is what came into a ring over the time fillWaitFor is given.
type fillRate struct {
	items, records uint64 // items delivered (0: none) and records taken
	batchSize      uint64 // max_batch_size (0: no limit)
	ringCapacity   uint64 // the ring's slots
	ringHeld       uint64 // slots the ring still holds (read or not)
}

// fillWaitFor: the time the recent rate takes to fill a batch
// (max_batch_size), at least lo (poll_interval) and at most hi
// (flush_timeout), and never longer than it takes to fill a quarter of the
// ring (with the slots it still holds).
func fillWaitFor(lo, hi, elapsed time.Duration, r fillRate) time.Duration {
	if hi <= lo || elapsed <= 0 || r.records == 0 || 4*r.ringHeld >= r.ringCapacity {
		return lo
	}
	// Time for n more of what came in elapsed (came > 0).
	timeFor := func(n, came uint64) time.Duration {
		return time.Duration(float64(elapsed) * float64(n) / float64(came))
	}
	wait := min(hi, timeFor(r.ringCapacity/4-r.ringHeld, r.records))
	if r.batchSize > 0 && r.items > 0 {
		wait = min(wait, timeFor(r.batchSize, r.items))
	}
	return max(lo, wait)
}

// measurementsBatch says how many measurements may gather in the ring while
// the file parks until its next collection, after a poll that took taken of
// them over elapsed (0: read them every poll_interval, like records of other
// signals). Measurements only change aggregates, which no one sees before
// the collection, so reading them in larger, rarer polls loses nothing and
// saves the wake-ups, which cost the Collector more than the measurements.
// The batch is a quarter of the ring, or less so that with the slots the
// ring still holds (held until a checkpoint is stored) a writer finds it at
// most half full when the file is woken. It is 0 when the measurements come
// fast enough to fill it within two poll intervals, or when the ring holds
// so much that the batch would be small.
func (l *signalLoop) measurementsBatch(taken uint64, elapsed time.Duration) uint64 {
	c, held, ok := l.ringFill()
	if !ok || 2*held >= c {
		return 0
	}
	batch := min(c/4, c/2-held)
	if batch < max(c/16, 2) || elapsed <= 0 ||
		taken*uint64(2*l.fr.deps.options.pollInterval) >= batch*uint64(elapsed) {
		return 0
	}
	return batch
}

// finalOffer runs at shutdown: it reads what is left of the ring and offers
// each pending batch once (no retries); metrics are collected one last time.
// Whatever is refused stays uncommitted in the file.
func (l *signalLoop) finalOffer() {
	ctx, deadline := l.fr.deps.finalOffer()

	// drainRing polls until the ring has nothing more to give; false means
	// stop offering (refusal, error or out of time).
	drainRing := func() bool {
		for time.Now().Before(deadline) {
			res, err := l.step(ctx)
			if err != nil {
				l.fr.deps.logger.Debug("Final read failed", zap.String("path", l.fr.path), zap.Error(err))
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

	if !drainRing() {
		return
	}
	if l.sig == ffi.Traces && !l.fr.keepsCheckpoints() {
		// Nothing keeps the spans still open: emit them as incomplete spans
		// (reason "collector stopping") rather than drop them.
		l.fr.mu.Lock()
		n, err := l.fr.rd.StopSpans(time.Now())
		l.fr.mu.Unlock()
		if err != nil || n == 0 {
			return
		}
		l.fr.deps.logger.Info("Collector stopping: spans still in flight emitted as incomplete spans",
			zap.String("path", l.fr.path), zap.Uint64("spans", n))
		drainRing()
		return
	}
	if l.sig != ffi.Metrics {
		return
	}
	// From now on only the collections below read measurements: one read
	// by a poll after the last collection would be lost with the reader.
	l.fr.mu.Lock()
	err := l.fr.rd.StopMeasurements()
	l.fr.mu.Unlock()
	if err != nil {
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

// saveCheckpoint stores the reader's state at shutdown (storage key set),
// after the final offers: the spans still in flight, what was not
// committed, the metric aggregates.
func (fr *fileReader) saveCheckpoint() {
	if !fr.keepsCheckpoints() {
		return
	}
	ctx, _ := fr.deps.finalOffer()
	fr.mu.Lock()
	stored, err := fr.storeWhileAttached(func() error { return fr.deps.checkpoints.save(ctx, fr.path, fr.rd) })
	fr.mu.Unlock()
	if !stored {
		return
	}
	if err != nil {
		fr.deps.logger.Warn("Cannot store the checkpoint of a file; its spans in flight and metric aggregates are lost with this stop",
			zap.String("path", fr.path), zap.Error(err))
		return
	}
	fr.deps.logger.Debug("Stored the checkpoint of a file", zap.String("path", fr.path))
}

// checkpointRings are the rings whose slots are held until a checkpoint.
var checkpointRings = [2]ffi.Signal{ffi.Traces, ffi.Metrics}

// consumed is, per checkpointRings, the records taken from the ring so far.
func consumed(s *ffi.Stats) (out [2]uint64) {
	for i, sig := range checkpointRings {
		out[i] = s.Consumed(sig)
	}
	return out
}

// checkpointState reads the reader's stats once and says whether a
// checkpoint is due now, before checkpoint_interval (dueNow), and whether
// one is owed at all (owed: span events or measurements read, batches
// committed, or a writer restart since the last stored one). One is due now
// when the records taken from the spans or the measurements ring since the
// last stored checkpoint fill half of it, so that the held slots never fill
// the ring and make the writer drop; and when the writer started over in
// place since, because what its old stream still has to deliver is then
// only in this reader's memory (the rings were reset), so that a crash of
// the Collector does not lose it.
func (fr *fileReader) checkpointState() (dueNow, owed bool) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	s, err := fr.rd.Stats()
	if err != nil {
		return false, false
	}
	seen, taken := fr.seenLocked(&s)
	owed = seen != fr.checkpointSeen
	if s.WriterRestarts != fr.checkpointSeen[2] {
		return true, owed
	}
	for i, sig := range checkpointRings {
		if taken[i] < fr.consumedAtCheckpoint[i] {
			fr.consumedAtCheckpoint[i] = taken[i] // the writer started over
		}
		if c := s.RingCapacity[sig]; c > 0 && 2*(taken[i]-fr.consumedAtCheckpoint[i]) >= c {
			return true, owed
		}
	}
	return false, owed
}

// seenLocked gives, from the reader's stats s, what a checkpoint taken now
// would have seen (records taken from the spans and measurements rings,
// batches committed, writer restarts) and the records taken from each.
// fr.mu is held.
func (fr *fileReader) seenLocked(s *ffi.Stats) (seen [3]uint64, taken [2]uint64) {
	taken = consumed(s)
	return [3]uint64{taken[0] + taken[1], fr.commits.Load(), s.WriterRestarts}, taken
}

// checkpointIfChanged stores a checkpoint of the reader (storage key set)
// when span events or measurements were read, or batches committed, since
// the last one; the records it covers go back to the writers.
func (fr *fileReader) checkpointIfChanged(ctx context.Context) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	s, err := fr.rd.Stats()
	if err != nil {
		return
	}
	seen, taken := fr.seenLocked(&s)
	if seen == fr.checkpointSeen {
		return
	}
	stored, err := fr.storeWhileAttached(func() error { return fr.deps.checkpoints.save(ctx, fr.path, fr.rd) })
	if err != nil {
		if !fr.checkpointWarn {
			fr.deps.logger.Warn("Cannot store the checkpoint of a file; its rings keep what was read since the last one",
				zap.String("path", fr.path), zap.Error(err))
			fr.checkpointWarn = true
		}
		return
	}
	if !stored {
		return
	}
	fr.checkpointWarn = false
	fr.checkpointSeen = seen
	fr.consumedAtCheckpoint = taken
}
