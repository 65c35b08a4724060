package e2e

// Collector restarts (GitHub issue 15): what a graceful stop does to the
// spans in flight, and the files of writers that died.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stop sends SIGINT to the Collector and waits until it exited.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the Collector did not stop within 30s of SIGINT")
	}
}

// TestGracefulStopWithoutStorage: a Collector without storage stops while
// an app holds 5 spans open. They arrive as incomplete spans with the reason
// "collector stopping" (they were dropped before issue 15), and the stop is
// logged with their count.
func TestGracefulStopWithoutStorage(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	c := startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{}))
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--count", "100", "--open", "5")
	w.waitReady(t)
	waitFor(t, "the finished spans", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n, _ := contiguous(s.spanCount, "c span %d")
		return n == 100
	})
	c.stop(t)
	s.snapshot(func() {
		for k := range 5 {
			name := fmt.Sprintf("c open %d", k)
			attrs := s.spans[name]
			if attrs["otlp_mmap.incomplete"] != true || attrs["otlp_mmap.incomplete.reason"] != "collector stopping" || s.spanCount[name] != 1 {
				t.Fatalf("span %q arrived %d times with %v, want once, incomplete, reason collector stopping", name, s.spanCount[name], attrs)
			}
		}
		if len(s.spanCount) != 105 {
			t.Fatalf("%d spans, want 105", len(s.spanCount))
		}
	})
	if log := c.log(); !strings.Contains(log, "spans still in flight emitted as incomplete spans") || !strings.Contains(log, `"spans": 5`) {
		t.Fatalf("the stop was not logged with the 5 spans:\n%s", tail(log, 4000))
	}
}

// TestCrashLoopingWritersLeaveNoFiles: 50 writers (SOAK: 500), five alive at
// a time, each with its own file under one glob (the pid in the name, as
// README advises), write 1000 records/s with a span open and are SIGKILLed
// once the Collector has read from them; each is replaced by a new writer.
// With delete_after_drain (the default), every record a killed writer
// published arrives exactly once, its open span arrives as an incomplete
// span, its counter arrives with its final value, and then its file is
// deleted and logged: in the end only the five live writers' files remain.
func TestCrashLoopingWritersLeaveNoFiles(t *testing.T) {
	crashes := 50
	if soak() {
		crashes = 500
	}
	const lanes = 5
	s := newSink(t)
	dir := t.TempDir()
	c := startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{}))
	ringEnv := []string{"OTEL_MMAP_SPAN_SLOTS=1024", "OTEL_MMAP_LOG_SLOTS=512", "OTEL_MMAP_METRIC_SLOTS=512"}
	start := func(id int) *writer {
		w := startWriter(t, filepath.Join(dir, fmt.Sprintf("app-%04d.otlp", id)), ringEnv,
			"--service", fmt.Sprintf("s%d", id), "--prefix", fmt.Sprintf("w%d", id), "--open", "1", "--rate", "1000")
		w.waitReady(t)
		return w
	}
	live := make([]*writer, lanes)
	ids := make([]int, lanes)
	for i := range lanes {
		live[i], ids[i] = start(i), i
	}
	published := map[int]int64{}
	next := lanes
	for k := range crashes {
		lane := k % lanes
		id := ids[lane]
		// The Collector reads the file while its writer holds the lock: only
		// then can it tell later that the writer is gone.
		waitFor(t, fmt.Sprintf("a record of writer %d", id), 30*time.Second, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.logs[fmt.Sprintf("w%d log 0", id)] > 0
		})
		published[id] = live[lane].kill(t)
		live[lane], ids[lane] = start(next), next
		next++
	}
	waitFor(t, "every published record of the killed writers", 60*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for id, n := range published {
			logs, _ := contiguous(s.logs, fmt.Sprintf("w%d log %%d", id))
			spans, _ := contiguous(s.spanCount, fmt.Sprintf("w%d span %%d", id))
			if int64(logs) < n || int64(spans) < n || s.spans[fmt.Sprintf("w%d open 0", id)]["otlp_mmap.incomplete"] != true {
				return false
			}
		}
		return true
	})
	var left []string
	waitFor(t, "only the live writers' files to remain", 30*time.Second, func() bool {
		left, _ = filepath.Glob(filepath.Join(dir, "*.otlp"))
		return len(left) == lanes
	})
	for i, id := range ids {
		if want := filepath.Join(dir, fmt.Sprintf("app-%04d.otlp", id)); left[i] != want {
			t.Fatalf("files left: %v, want the live writers' %v", left, ids)
		}
	}
	s.snapshot(func() {
		for id, n := range published {
			prefix := fmt.Sprintf("w%d ", id)
			logs, dupLog := contiguous(s.logs, prefix+"log %d")
			spans, dupSpan := contiguous(s.spanCount, prefix+"span %d")
			if dupLog != "" || dupSpan != "" {
				t.Fatalf("delivered more than once: %q %q", dupLog, dupSpan)
			}
			all := 0
			for body := range s.logs {
				if strings.HasPrefix(body, prefix) {
					all++
				}
			}
			if all != logs {
				t.Fatalf("writer %d: %d logs arrived, %d of them without a gap", id, all, logs)
			}
			// The counter's last value covers every record published (and
			// the one being written at the kill, at most).
			if v := s.svcMetrics[fmt.Sprintf("s%d/crashy.count", id)]; len(v) == 0 || v[len(v)-1].value < n || v[len(v)-1].value > int64(logs)+1 {
				t.Fatalf("writer %d: counter %v, %d published, %d logs", id, v, n, logs)
			}
			_ = spans
		}
	})
	// The Collector's logger samples repeated lines: the count is the
	// otelcol_receiver_mmap_deleted_files counter's business (unit tests).
	if !strings.Contains(c.log(), "Deleted the file of a writer that is gone") {
		t.Fatal("no deletion logged")
	}
	t.Logf("%d writers killed and replaced: every published record delivered once, %d files deleted, %d left (the live writers')", crashes, crashes, len(left))
}
