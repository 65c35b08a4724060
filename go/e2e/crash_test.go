package e2e

// The crash path under load (issue 12): a multi-threaded writer SIGKILLed at
// random moments, and files truncated under the real Collector.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const crashThreads = 4

// TestThreadedWriterKilledUnderLoad: crashy --threads 4 writes log records
// from four threads, unpaced, into small rings while the Collector reads; it
// is SIGKILLed at a random moment, five times (SOAK: 100). In every other
// round one thread hangs inside a claimed slot (--stall) before the kill, so
// a stranded slot is there for sure (a kill alone catches a thread inside
// its claim only now and then). Every record a thread published is delivered
// exactly once, in order, without gaps; the slots the threads held at the
// kill do not stop the ring: afterwards the file's reader_index has caught
// up with writer_index, and the claims that were never published are at
// most one per thread.
func TestThreadedWriterKilledUnderLoad(t *testing.T) {
	kills := 5
	if soak() {
		kills = 100
	}
	s := newSink(t)
	dir := t.TempDir()
	startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{logBatch: 1000, keepFiles: true}))
	env := []string{"OTEL_MMAP_LOG_SLOTS=256"}
	totalUnpublished := 0
	for k := range kills {
		prefix := fmt.Sprintf("k%d-t", k)
		path := filepath.Join(dir, fmt.Sprintf("app%d.otlp", k))
		args := []string{"--threads", strconv.Itoa(crashThreads), "--prefix", prefix}
		stall := k%2 == 0
		if stall {
			args = append(args, "--stall")
		}
		w := startWriter(t, path, env, args...)
		w.waitReady(t)
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		w.kill(t)
		published := w.threadCounts()
		if len(published) != crashThreads {
			t.Fatalf("kill %d: the writer reported %v", k, published)
		}
		// Every record reported as published arrives.
		waitFor(t, fmt.Sprintf("kill %d: every published record", k), 60*time.Second, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			for th := range crashThreads {
				n := published[fmt.Sprintf("t%d", th)]
				if got, _ := contiguous(s.logs, fmt.Sprintf("%s%d log %%d", prefix, th)); int64(got) < n {
					return false
				}
			}
			return true
		})
		// The ring is not stranded: the reader catches up with writer_index.
		var rd, wr, unpublished int64
		waitFor(t, fmt.Sprintf("kill %d: reader_index to reach writer_index", k), 30*time.Second, func() bool {
			rd, wr, unpublished = eventsRing(t, path)
			return rd == wr
		})
		time.Sleep(300 * time.Millisecond) // duplicates, if any, arrive
		s.snapshot(func() {
			delivered := 0
			for th := range crashThreads {
				format := fmt.Sprintf("%s%d log %%d", prefix, th)
				n, dup := contiguous(s.logs, format)
				if dup != "" {
					t.Fatalf("kill %d: %q delivered more than once", k, dup)
				}
				if int64(n) < published[fmt.Sprintf("t%d", th)] {
					t.Fatalf("kill %d: thread %d published %d records, %d arrived in order", k, th, published[fmt.Sprintf("t%d", th)], n)
				}
				delivered += n
			}
			all := 0
			for name := range s.logs {
				if strings.HasPrefix(name, prefix) {
					all++
				}
			}
			if all != delivered {
				t.Fatalf("kill %d: %d records arrived, only %d of them in order without gaps", k, all, delivered)
			}
			// Every claimed slot was either delivered or skipped as abandoned;
			// a thread holds at most one claim at a time.
			stranded := int(wr+1) - delivered
			if stranded < 0 || stranded > crashThreads || (stall && stranded == 0) {
				t.Fatalf("kill %d: writer_index %d, %d delivered: %d claims never published", k, wr, delivered, stranded)
			}
			totalUnpublished += stranded
			t.Logf("kill %d: %d records delivered once each, %d claimed slots abandoned by the kill (inspect: %d unpublished behind reader_index %d)",
				k, delivered, stranded, unpublished, rd)
		})
	}
	t.Logf("%d kills, %d abandoned slots in all", kills, totalUnpublished)
}

// threadCounts is the last "published t0=.. t1=.." line of a --threads writer.
func (w *writer) threadCounts() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for k, v := range w.last {
		out[k] = v
	}
	return out
}

var ringLine = regexp.MustCompile(`events ring:.*reader_index\s+(-?\d+)\s+writer_index\s+(-?\d+).*unpublished (\d+)`)

// eventsRing reads the events ring's reader_index, writer_index and the count
// of claimed, unpublished slots with `otlp-mmap inspect`.
func eventsRing(t *testing.T, path string) (reader, writer, unpublished int64) {
	t.Helper()
	out, err := exec.Command(env(t, "OTLP_MMAP_TOOL"), "inspect", path).CombinedOutput()
	if err != nil {
		t.Fatalf("inspect %s: %v\n%s", path, err, out)
	}
	m := ringLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no events ring line in:\n%s", out)
	}
	reader, _ = strconv.ParseInt(m[1], 10, 64)
	writer, _ = strconv.ParseInt(m[2], 10, 64)
	unpublished, _ = strconv.ParseInt(m[3], 10, 64)
	return reader, writer, unpublished
}

// TestTruncationNeverKillsTheCollector: files are truncated, shrunk and
// regrown, or replaced by shorter files at random moments while writers write
// into them and the Collector reads them, for 10 s (SOAK: SOAK_SECONDS). The
// Collector never dies; a file that shrank under it is given up with a log
// line; writers that come after are still read.
func TestTruncationNeverKillsTheCollector(t *testing.T) {
	runFor := 10 * time.Second
	if soak() {
		runFor = soakDuration()
	}
	s := newSink(t)
	dir := t.TempDir()
	c := startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{}))
	env := []string{"OTEL_MMAP_SPAN_SLOTS=256", "OTEL_MMAP_LOG_SLOTS=256", "OTEL_MMAP_METRIC_SLOTS=256"}
	deadline := time.Now().Add(runFor)
	rounds := 0
	for time.Now().Before(deadline) {
		path := filepath.Join(dir, fmt.Sprintf("v%d.otlp", rounds%4))
		w := startWriter(t, path, env, "--prefix", fmt.Sprintf("r%d", rounds), "--rate", "20000", "--exit", "--duration-secs", "0.3")
		time.Sleep(time.Duration(20+rand.IntN(250)) * time.Millisecond)
		switch rounds % 3 {
		case 0: // truncate
			_ = os.Truncate(path, int64(rand.IntN(65536)))
		case 1: // shrink, then grow back (the pages come back as zeros)
			if fi, err := os.Stat(path); err == nil {
				_ = os.Truncate(path, int64(rand.IntN(65536)))
				_ = os.Truncate(path, fi.Size())
			}
		case 2: // replaced in place by a shorter file's bytes
			if f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
				_, _ = f.Write(make([]byte, rand.IntN(4096)))
				_ = f.Close()
			}
		}
		<-w.exited
		rounds++
		if !c.alive() {
			t.Fatalf("the Collector died after %d truncation rounds:\n%s", rounds, tail(c.log(), 4000))
		}
	}
	// A writer after all that is still read.
	w := startWriter(t, filepath.Join(dir, "after.otlp"), nil, "--prefix", "after", "--count", "10", "--exit")
	<-w.exited
	waitFor(t, "the records of a writer after the truncations", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n, _ := contiguous(s.logs, "after log %d")
		return n == 10
	})
	if !c.alive() {
		t.Fatal("the Collector died")
	}
	t.Logf("%d truncation rounds, the Collector alive throughout", rounds)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
