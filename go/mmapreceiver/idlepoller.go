package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// idlePoller hands the idle files of a receiver to the library's watcher
// thread (ffi.Watcher), which looks at all of them every poll_interval with
// atomic loads on its own mapping of each file and writes the token of a file
// that got records (or whose deadline came) to a pipe. A file reader that
// found nothing to read for a while parks here and waits on its wake
// channel; one goroutine reads the pipe (through the Go netpoller: no timer)
// and wakes the file. The receiver's scan asks every parked file's reader
// whether its writer went away (checkWriters), and wakes those. An idle receiver therefore costs one sleep of one
// library thread per poll_interval, and no Go timer or wake-up at all, which
// on a 2-core VM is about 6x cheaper than a Go timer firing as often.
type idlePoller struct {
	watcher *ffi.Watcher
	tokens  *os.File      // read end of the watcher's pipe
	done    chan struct{} // closed when the pipe reader returned

	mu     sync.Mutex
	files  map[uint64]*fileReader // by token: files that park here
	asleep map[uint64]*fileReader // by token: files parked now
	next   uint64
	parked atomic.Int64  // files parked now (tests)
	parks  atomic.Uint64 // parks so far (tests)
	wakes  atomic.Uint64 // files woken by the watcher so far (tests)
}

func startIdlePoller(interval time.Duration) (*idlePoller, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close() // the library keeps its own duplicate
	watcher, err := ffi.StartWatcher(interval, w)
	if err != nil {
		r.Close()
		return nil, err
	}
	p := &idlePoller{
		watcher: watcher,
		tokens:  r,
		done:    make(chan struct{}),
		files:   map[uint64]*fileReader{},
		asleep:  map[uint64]*fileReader{},
	}
	go p.readTokens()
	return p, nil
}

// readTokens wakes the file of every token the watcher writes, until the
// watcher is closed (end of the pipe).
func (p *idlePoller) readTokens() {
	defer close(p.done)
	var buf [8 * 64]byte
	have := 0
	for {
		n, err := p.tokens.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
		whole := have - have%8
		for off := 0; off < whole; off += 8 {
			p.wake(binary.NativeEndian.Uint64(buf[off:]))
		}
		have = copy(buf[:], buf[whole:have])
	}
}

func (p *idlePoller) wake(token uint64) {
	p.mu.Lock()
	fr := p.files[token]
	p.mu.Unlock()
	if fr == nil {
		return
	}
	p.wakes.Add(1)
	select {
	case fr.wake <- struct{}{}:
	default:
	}
}

// park leaves fr to the watcher until it has records to read (in each ring:
// wakeAt[signal] of them, 0 or 1: the first) or due comes; fr.wake
// receives then. false: the library could not watch the file (the caller
// sleeps on a timer instead).
func (p *idlePoller) park(fr *fileReader, due time.Time, wakeAt [3]uint64) bool {
	select {
	case <-fr.wake: // left over from an earlier park
	default:
	}
	p.mu.Lock()
	if fr.token == 0 {
		p.next++
		fr.token = p.next
		p.files[fr.token] = fr
	}
	p.mu.Unlock()
	fr.mu.Lock()
	err := p.watcher.Park(fr.rd, fr.token, fr.read, due, wakeAt)
	fr.mu.Unlock()
	if err != nil {
		return false
	}
	p.mu.Lock()
	p.asleep[fr.token] = fr
	p.mu.Unlock()
	p.parked.Add(1)
	p.parks.Add(1)
	return true
}

// unpark takes fr back from the watcher (it woke up, or stops).
func (p *idlePoller) unpark(fr *fileReader) {
	_, _ = p.watcher.Unpark(fr.token)
	p.mu.Lock()
	delete(p.asleep, fr.token)
	p.mu.Unlock()
	p.parked.Add(-1)
}

// checkWriters wakes the parked files whose writer went away since they
// parked (one fcntl each), so that their spans in flight come out as
// incomplete spans; the scan calls it every scan_interval.
func (p *idlePoller) checkWriters() {
	p.mu.Lock()
	asleep := make([]*fileReader, 0, len(p.asleep))
	for _, fr := range p.asleep {
		asleep = append(asleep, fr)
	}
	p.mu.Unlock()
	for _, fr := range asleep {
		fr.mu.Lock()
		gone := false
		if !fr.closed {
			gone, _ = fr.rd.WriterGone()
		}
		fr.mu.Unlock()
		if gone {
			if parked, _ := p.watcher.Unpark(fr.token); parked {
				p.wake(fr.token)
			}
		}
	}
}

// forget drops fr for good (its loop ended).
func (p *idlePoller) forget(fr *fileReader) {
	p.mu.Lock()
	delete(p.files, fr.token)
	p.mu.Unlock()
}

// close stops the watcher and the pipe reader; call it once every file
// reader has stopped.
func (p *idlePoller) close() {
	_ = p.watcher.Close()
	<-p.done
	_ = p.tokens.Close()
}
