package e2e

// Collector restarts (GitHub issue 15): what a graceful stop does to the
// spans in flight, and the files of writers that died.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
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

// storageConfig is reliabilityConfig with the receiver's state kept in a
// file_storage extension in storageDir.
func storageConfig(dir, storageDir, url string) string {
	return storageConfigWith(dir, storageDir, url, rxOpts{})
}

// storageConfigWith is storageConfig with the receiver options o.
func storageConfigWith(dir, storageDir, url string, o rxOpts) string {
	cfg := reliabilityConfig(dir, url, o)
	cfg = strings.Replace(cfg, "  mmap:\n", "  mmap:\n    storage: file_storage\n    checkpoint_interval: 200ms\n", 1)
	cfg = strings.Replace(cfg, "service:\n", "service:\n  extensions: [file_storage]\n", 1)
	return fmt.Sprintf("extensions:\n  file_storage:\n    directory: %q\n%s", storageDir, cfg)
}

// TestGracefulRestartWithStorage: an app writes 1000 records/s, each span
// ending only 200 records later (so 200 spans are open at any moment) and 3
// spans never ending, while the Collector, with storage, is stopped and
// started again twice (SOAK: every 2 s for SOAK_SECONDS). No span is lost or
// duplicated and none arrives as a start_missing fragment: the spans open
// across a restart end normally; those still open when the app exits arrive
// as incomplete spans (writer gone). Every log arrives once. The cumulative
// counter keeps its start time and never goes down.
func TestGracefulRestartWithStorage(t *testing.T) {
	restarts := 2
	if soak() {
		restarts = int(soakDuration() / (2 * time.Second))
	}
	const hold = 200
	s := newSink(t)
	dir, storageDir := t.TempDir(), t.TempDir()
	cfg := storageConfig(dir, storageDir, s.url)
	c := startCollector(t, "collector-0", cfg)
	runFor := time.Duration(restarts+2) * time.Second
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--rate", "1000", "--hold", fmt.Sprint(hold),
		"--open", "3", "--duration-secs", fmt.Sprint(runFor.Seconds()), "--exit")
	w.waitReady(t)
	for r := range restarts {
		time.Sleep(time.Second)
		c.stop(t)
		c = startCollector(t, fmt.Sprintf("collector-%d", r+1), cfg)
		waitFor(t, "the restarted Collector to restore the file's state", 10*time.Second, func() bool {
			return strings.Contains(c.log(), "Restored the state of a file from its checkpoint")
		})
	}
	written := w.waitDone(t, runFor+30*time.Second)["written"]
	<-w.exited
	waitFor(t, "every span and log, and the never-ended spans as incomplete", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		spans, _ := contiguous(s.spanCount, "c span %d")
		logs, _ := contiguous(s.logs, "c log %d")
		for k := range 3 {
			if s.spans[fmt.Sprintf("c open %d", k)]["otlp_mmap.incomplete"] != true {
				return false
			}
		}
		return int64(spans) >= written && int64(logs) >= written
	})
	time.Sleep(time.Second) // duplicates, if any, arrive
	s.snapshot(func() {
		for name, n := range s.spanCount {
			attrs := s.spans[name]
			if n != 1 || attrs["otlp_mmap.start_missing"] == true {
				t.Fatalf("span %q arrived %d times with %v", name, n, attrs)
			}
		}
		if len(s.spanCount) != int(written)+3 {
			t.Fatalf("%d spans, want %d", len(s.spanCount), written+3)
		}
		for i := range written {
			attrs := s.spans[fmt.Sprintf("c span %d", i)]
			held := i >= written-hold
			if incomplete := attrs["otlp_mmap.incomplete"] == true; incomplete != held {
				t.Fatalf("span %d (written %d): incomplete %v: %v", i, written, incomplete, attrs)
			}
			if held && attrs["otlp_mmap.incomplete.reason"] != "writer process is gone" {
				t.Fatalf("span %d: %v", i, attrs)
			}
		}
		for body, n := range s.logs {
			if n != 1 {
				t.Fatalf("log %q arrived %d times", body, n)
			}
		}
		if len(s.logs) != int(written) {
			t.Fatalf("%d logs, want %d", len(s.logs), written)
		}
	})
	waitFor(t, "the counter's final value", 10*time.Second, func() bool { return s.lastMetric("crashy/crashy.count") == written })
	s.snapshot(func() {
		v := s.svcMetrics["crashy/crashy.count"]
		for i := 1; i < len(v); i++ {
			if v[i].start != v[0].start || v[i].value < v[i-1].value {
				t.Fatalf("counter point %d: %d from %d after %d from %d: a reset", i, v[i].value, v[i].start, v[i-1].value, v[i-1].start)
			}
		}
		t.Logf("%d graceful restarts: %d records, every span and log once, %d spans open across each restart, counter at %d from one start time over %d points",
			restarts, written, hold, v[len(v)-1].value, len(v))
	})
}

// TestCheckpointOfAnotherFileIsIgnored: the Collector stops with a
// checkpoint of app.otlp; meanwhile the app is replaced by another one that
// creates its own file at the same path. The next Collector ignores the old
// checkpoint with a log line and reads the new file from its start.
func TestCheckpointOfAnotherFileIsIgnored(t *testing.T) {
	s := newSink(t)
	dir, storageDir := t.TempDir(), t.TempDir()
	cfg := storageConfig(dir, storageDir, s.url)
	c := startCollector(t, "collector-0", cfg)
	path := filepath.Join(dir, "app.otlp")
	first := startWriter(t, path, nil, "--prefix", "a", "--count", "10", "--open", "2")
	first.waitReady(t)
	waitFor(t, "the first app's logs", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n, _ := contiguous(s.logs, "a log %d")
		return n == 10
	})
	c.stop(t)
	first.kill(t)
	second := startWriter(t, path, nil, "--prefix", "b", "--count", "10")
	second.waitReady(t)
	c = startCollector(t, "collector-1", cfg)
	waitFor(t, "the second app's records", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n, _ := contiguous(s.logs, "b log %d")
		m, _ := contiguous(s.spanCount, "b span %d")
		return n == 10 && m == 10
	})
	waitFor(t, "the ignored checkpoint to be logged", 10*time.Second, func() bool {
		return strings.Contains(c.log(), "Ignoring the checkpoint of a file") && strings.Contains(c.log(), "another file")
	})
	s.snapshot(func() {
		for name, n := range s.spanCount {
			if n != 1 || strings.HasPrefix(name, "a open") {
				t.Fatalf("span %q arrived %d times", name, n)
			}
		}
	})
}

// TestCorruptCheckpointIsIgnored: the Collector stops with a checkpoint of
// app.otlp, whose app goes on writing 500 records/s, each span ending only
// once 3 more records were written, with 2 spans never ending; the
// checkpoint is then corrupted in the file_storage database. The next
// Collector ignores it with a log line and counts it, and reads the file on
// from where the checkpoint was taken: every log arrives once; every span
// once and complete, except the ones the first Collector held in flight at
// the stop (split by the lost checkpoint), each of which arrives as a
// nameless start_missing fragment (its end alone); so the records written
// after the restart all arrive complete. The 2 open spans, held only by the
// ignored checkpoint, are lost (not checked).
func TestCorruptCheckpointIsIgnored(t *testing.T) {
	// The spans split by the lost checkpoint. With --hold H, crashy's record
	// i starts span i, writes its attribute, its log and its count, then ends
	// span i-H: the spans ring holds ..., start(i), attributes(i), end(i-H),
	// start(i+1), ... The stopping Collector has read some prefix of it (well
	// over H records: see "records before the stop"), and the spans it has
	// started and not ended are the last H whose start it read, or H+1 when
	// the prefix ends inside a record, after start(i) and before end(i-H).
	// The stop puts exactly those in the checkpoint and releases their slots;
	// the checkpoint lost, the next Collector reads only their ends. So H or
	// H+1 spans of consecutive indices are split on every run. (Without
	// --hold, that is H = 0, a span was split only when the stop fell inside
	// a record, by chance.)
	const hold = 3
	s := newSink(t)
	dir, storageDir := t.TempDir(), t.TempDir()
	cfg := storageConfig(dir, storageDir, s.url)
	c := startCollector(t, "collector-0", cfg)
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--open", "2", "--rate", "500", "--hold", fmt.Sprint(hold))
	w.waitReady(t)
	waitFor(t, "records before the stop", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n, _ := contiguous(s.logs, "c log %d")
		return n >= 200
	})
	c.stop(t)
	corruptCheckpoint(t, storageDir, filepath.Join(dir, "app.otlp"))

	port := freePort(t)
	cfg = strings.Replace(cfg, "telemetry: {metrics: {level: none}}", fmt.Sprintf(
		"telemetry: {metrics: {level: basic, readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}}]}}", port), 1)
	c = startCollector(t, "collector-1", cfg)
	after := w.writtenSoFar()
	waitFor(t, "the ignored checkpoint to be logged", 30*time.Second, func() bool {
		return strings.Contains(c.log(), "Ignoring the checkpoint of a file")
	})
	log := c.log()
	var line string
	for l := range strings.Lines(log) {
		if strings.Contains(l, "Ignoring the checkpoint of a file") {
			line = l
		}
	}
	if !strings.Contains(line, "corrupt") || strings.Contains(log, "Restored the state of a file") {
		t.Fatalf("the checkpoint was not ignored as corrupt:\n%s", tail(log, 4000))
	}
	// Every log below after+500; every span up to one at or above after+499
	// but at most H+1 (the split ones), and a fragment for each span missing.
	want := after + 500
	waitForState(t, "500 records written after the restart", 30*time.Second, func() (bool, string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		logs, _ := contiguous(s.logs, "c log %d")
		highest := highestIndex(s.spanCount, "c span ")
		missing := missingIndices(s.spanCount, "c span ", highest)
		state := fmt.Sprintf("records from %d on written after the restart; %d logs without a gap; spans up to %d, %d of them missing %s; %d start_missing fragments",
			after, logs, highest, len(missing), summary(missing), s.spanCount[""])
		return int64(logs) >= want && highest >= want-1 && len(missing) <= hold+1 && s.spanCount[""] == len(missing), state
	})
	ignored := scrapeCounter(t, port, "otelcol_receiver_mmap_checkpoints_ignored")
	if ignored != 1 {
		t.Fatalf("otelcol_receiver_mmap_checkpoints_ignored = %d, want 1", ignored)
	}
	c.stop(t)
	s.snapshot(func() {
		logs, dup := contiguous(s.logs, "c log %d")
		if dup != "" || logs != len(s.logs) {
			t.Fatalf("%d logs without a gap of %d, %q more than once", logs, len(s.logs), dup)
		}
		highest := highestIndex(s.spanCount, "c span ")
		if highest < want-1 {
			t.Fatalf("spans up to %d arrived, want up to %d at least", highest, want-1)
		}
		for i := range highest + 1 {
			name := fmt.Sprintf("c span %d", i)
			attrs := s.spans[name]
			if n := s.spanCount[name]; n > 1 || (n == 1 && (attrs["otlp_mmap.incomplete"] == true || attrs["otlp_mmap.start_missing"] == true)) {
				t.Fatalf("span %d (records from %d on written after the restart) arrived %d times with %v", i, after, n, attrs)
			}
		}
		// The missing spans are the split ones (see hold): H or H+1 of
		// consecutive indices, each matched by a fragment. Every other span
		// up to the highest arrived once and complete (above), so every
		// record written after the restart did.
		missing := missingIndices(s.spanCount, "c span ", highest)
		if n := len(missing); n < hold || n > hold+1 || missing[n-1]-missing[0] != int64(n-1) {
			t.Fatalf("spans missing %s, want the %d or %d consecutive ones in flight at the stop", summary(missing), hold, hold+1)
		}
		if s.spanCount[""] != len(missing) || s.spans[""]["otlp_mmap.start_missing"] != true {
			t.Fatalf("%d spans missing %s, %d nameless fragments (the last with %v), want one start_missing fragment each",
				len(missing), summary(missing), s.spanCount[""], s.spans[""])
		}
		t.Logf("corrupt checkpoint ignored and counted; %d logs and spans up to %d once (from %d on written after the restart), %d split by the lost checkpoint: %s",
			logs, highest, after, len(missing), summary(missing))
	})
}

// waitForState is waitFor whose done also describes the state it saw, which
// a timeout reports.
func waitForState(t *testing.T, what string, timeout time.Duration, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// highestIndex is the highest i of the names prefix+i received, or -1.
func highestIndex(counts map[string]int, prefix string) int64 {
	highest := int64(-1)
	for name := range counts {
		if s, ok := strings.CutPrefix(name, prefix); ok {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil && i > highest {
				highest = i
			}
		}
	}
	return highest
}

// missingIndices are the i in [0, highest] whose name prefix+i was not
// received, in order.
func missingIndices(counts map[string]int, prefix string, highest int64) []int64 {
	var missing []int64
	for i := range highest + 1 {
		if counts[prefix+strconv.FormatInt(i, 10)] == 0 {
			missing = append(missing, i)
		}
	}
	return missing
}

// summary shows indices, the first and last few of a long list.
func summary(indices []int64) string {
	if len(indices) <= 10 {
		return fmt.Sprint(indices)
	}
	return fmt.Sprintf("%v ... %v", indices[:5], indices[len(indices)-5:])
}

// corruptCheckpoint overwrites the checkpoint of path in the file_storage
// database of the mmap receiver in storageDir (bucket "default") with a
// truncated copy that starts with an over-long varint where the first
// field's tag should be: bytes that do not decode as a checkpoint.
func corruptCheckpoint(t *testing.T, storageDir, path string) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(storageDir, "receiver_mmap_"), 0o600, &bbolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("default"))
		if b == nil {
			return fmt.Errorf("no bucket \"default\" in the storage")
		}
		key := []byte("file:" + path)
		v := b.Get(key)
		if len(v) < 32 {
			return fmt.Errorf("checkpoint of %s: %d bytes, want a checkpoint", path, len(v))
		}
		garbage := append([]byte(nil), v[:len(v)/2]...)
		for i := range 16 {
			garbage[i] = 0xff
		}
		return b.Put(key, garbage)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// scrapeCounter sums the samples of a counter on the Collector's Prometheus
// endpoint at port, once it is served.
func scrapeCounter(t *testing.T, port int, name string) int64 {
	t.Helper()
	var sum int64
	waitFor(t, name+" on the metrics endpoint", 10*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false
		}
		sum = 0
		found := false
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, name+"_total") && !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
				continue
			}
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			sum += int64(v)
			found = true
		}
		return found
	})
	return sum
}

// TestCollectorKilledWithStorage: the Collector, with storage (checkpoints
// every 200ms), is SIGKILLed while an app writes 2000 records/s with 100
// spans open at any moment, and started again (twice; SOAK: every 4 s for
// SOAK_SECONDS). Nothing the last checkpoint covered is lost: every span
// arrives complete (but those still open when the app exits, as incomplete
// spans), none as a start_missing fragment, every log arrives, and the
// counter ends at the number of records with one start time throughout.
// Each crash duplicates at most one batch (the one being offered when it
// came): at most max_batch_size spans or logs, asserted crash by crash.
func TestCollectorKilledWithStorage(t *testing.T) {
	rounds := 2
	if soak() {
		rounds = int(soakDuration() / (4 * time.Second))
	}
	const rate, hold = 2000, 100
	o := rxOpts{traceBatch: 100, logBatch: 100}
	batch := max(o.traceBatch, o.logBatch) // one file: one batch offered at a time
	s := newSink(t)
	dir, storageDir := t.TempDir(), t.TempDir()
	cfg := storageConfigWith(dir, storageDir, s.url, o)
	runFor := time.Duration(rounds)*3*time.Second + 2*time.Second
	c := startCollector(t, "collector-0", cfg)
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--rate", fmt.Sprint(rate), "--hold", fmt.Sprint(hold),
		"--duration-secs", fmt.Sprint(runFor.Seconds()), "--exit")
	w.waitReady(t)
	// duplicates counts the spans and logs received more than once so far.
	duplicates := func() (n int) {
		s.snapshot(func() {
			for _, k := range s.spanCount {
				n += k - 1
			}
			for _, k := range s.logs {
				n += k - 1
			}
		})
		return n
	}
	logsSoFar := func() (n int) {
		s.snapshot(func() { n, _ = contiguous(s.logs, "c log %d") })
		return n
	}
	perCrash := make([]int, 0, rounds)
	before := duplicates()
	if before != 0 {
		t.Fatalf("%d duplicates before any crash", before)
	}
	for r := range rounds {
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		if r > 0 {
			// The previous crash's duplicates came before the records after it.
			d := duplicates()
			perCrash = append(perCrash, d-before)
			before = d
		}
		c.kill(t)
		time.Sleep(200 * time.Millisecond)
		c = startCollector(t, fmt.Sprintf("collector-%d", r+1), cfg)
		// Wait until the new Collector delivers records written after the
		// crash, so that the next sleep starts past its replay.
		at := logsSoFar()
		waitFor(t, "records after the restart", 30*time.Second, func() bool { return logsSoFar() > at+rate/10 })
	}
	done := w.waitDone(t, runFor+30*time.Second)
	<-w.exited
	written := done["written"]
	if done["dropped_spans"]+done["dropped_logs"]+done["dropped_measurements"] != 0 {
		t.Fatalf("the writer dropped records: %v", done)
	}
	waitFor(t, "every span and log", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		spans, _ := contiguous(s.spanCount, "c span %d")
		logs, _ := contiguous(s.logs, "c log %d")
		return int64(spans) >= written && int64(logs) >= written
	})
	waitFor(t, "the counter's final value", 10*time.Second, func() bool { return s.lastMetric("crashy/crashy.count") == written })
	time.Sleep(time.Second)
	perCrash = append(perCrash, duplicates()-before)
	s.snapshot(func() {
		spanDups, logDups := 0, 0
		for name, n := range s.spanCount {
			spanDups += n - 1
			if s.spans[name]["otlp_mmap.start_missing"] == true {
				t.Fatalf("a start_missing fragment: %q", name)
			}
		}
		for i := range written - hold {
			if attrs := s.spans[fmt.Sprintf("c span %d", i)]; attrs["otlp_mmap.incomplete"] == true {
				t.Fatalf("span %d arrived incomplete: %v", i, attrs)
			}
		}
		if len(s.spanCount) != int(written) {
			t.Fatalf("%d distinct spans, %d written", len(s.spanCount), written)
		}
		for _, n := range s.logs {
			logDups += n - 1
		}
		if len(s.logs) != int(written) {
			t.Fatalf("%d distinct logs, %d written", len(s.logs), written)
		}
		t.Logf("%d SIGKILLs with storage: %d records; lost: none; duplicated: %d spans, %d logs; per crash %v (bound: one batch, %d)",
			rounds, written, spanDups, logDups, perCrash, batch)
		for r, d := range perCrash {
			if d > batch {
				t.Fatalf("crash %d duplicated %d records, more than one batch (%d): %v", r, d, batch, perCrash)
			}
		}
		v := s.svcMetrics["crashy/crashy.count"]
		for i := range v {
			if v[i].start != v[0].start {
				t.Fatalf("counter point %d starts at %d, the first at %d: a reset", i, v[i].start, v[0].start)
			}
		}
	})
}

// TestGracefulRestartWithoutStorage: the same traffic as
// TestGracefulRestartWithStorage, without storage. Nothing is lost, but the
// spans open at each stop arrive twice, in halves: as an incomplete span
// ("collector stopping") with everything but the end, then as a
// start_missing fragment with the end; and the counter starts over with a
// new start time after each restart.
func TestGracefulRestartWithoutStorage(t *testing.T) {
	const restarts, hold = 2, 200
	s := newSink(t)
	dir := t.TempDir()
	cfg := reliabilityConfig(dir, s.url, rxOpts{})
	c := startCollector(t, "collector-0", cfg)
	runFor := time.Duration(restarts+2) * time.Second
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--rate", "1000", "--hold", fmt.Sprint(hold),
		"--duration-secs", fmt.Sprint(runFor.Seconds()), "--exit")
	w.waitReady(t)
	for r := range restarts {
		time.Sleep(time.Second)
		c.stop(t)
		c = startCollector(t, fmt.Sprintf("collector-%d", r+1), cfg)
	}
	written := w.waitDone(t, runFor+30*time.Second)["written"]
	<-w.exited
	waitFor(t, "every span and log", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		spans, _ := contiguous(s.spanCount, "c span %d")
		logs, _ := contiguous(s.logs, "c log %d")
		return int64(spans) >= written && int64(logs) >= written
	})
	waitFor(t, "the counter's final value", 10*time.Second, func() bool { return s.lastMetric("crashy/crashy.count") > 0 })
	time.Sleep(time.Second)
	s.snapshot(func() {
		stopped := 0
		for i := range written {
			attrs := s.spans[fmt.Sprintf("c span %d", i)]
			if s.spanCount[fmt.Sprintf("c span %d", i)] != 1 {
				t.Fatalf("span %d arrived %d times", i, s.spanCount[fmt.Sprintf("c span %d", i)])
			}
			if attrs["otlp_mmap.incomplete.reason"] == "collector stopping" {
				stopped++
			}
		}
		// A start_missing fragment has no name: they all count under "".
		fragments := s.spanCount[""]
		if stopped == 0 || fragments != stopped {
			t.Fatalf("%d spans stopped as incomplete, %d start_missing fragments: want as many, more than 0", stopped, fragments)
		}
		for body, n := range s.logs {
			if n != 1 {
				t.Fatalf("log %q arrived %d times", body, n)
			}
		}
		if len(s.logs) != int(written) {
			t.Fatalf("%d logs, want %d", len(s.logs), written)
		}
		// Each Collector counts from zero with its own start time; the last
		// value of each adds up to every measurement.
		v := s.svcMetrics["crashy/crashy.count"]
		last := map[uint64]int64{}
		for _, p := range v {
			last[p.start] = p.value
		}
		var total int64
		for _, n := range last {
			total += n
		}
		if len(last) != restarts+1 || total != written {
			t.Fatalf("counter: %d start times, values adding up to %d, want %d and %d", len(last), total, restarts+1, written)
		}
		t.Logf("%d graceful restarts without storage: %d records, none lost; %d spans open at the stops arrived as incomplete spans plus %d start_missing fragments; the counter started over %d times",
			restarts, written, stopped, fragments, restarts)
	})
}

// TestWriterReplacedUnderStorage: with storage, a second app replaces the
// file of a first one (still running, 3 spans open) at the same path. The
// old file is drained without checkpoints (the path is the new file's now):
// both streams arrive complete and once, the first app's open spans as
// incomplete spans, and no checkpoint is ignored (the two readers never
// write each other's).
func TestWriterReplacedUnderStorage(t *testing.T) {
	s := newSink(t)
	dir, storageDir := t.TempDir(), t.TempDir()
	c := startCollector(t, "collector", storageConfig(dir, storageDir, s.url))
	path := filepath.Join(dir, "app.otlp")
	first := startWriter(t, path, nil, "--service", "first", "--prefix", "a", "--count", "2000", "--open", "3")
	first.waitReady(t)
	time.Sleep(300 * time.Millisecond)
	second := startWriter(t, path, nil, "--service", "second", "--prefix", "b", "--count", "500")
	second.waitReady(t)
	waitFor(t, "both streams, the first one's open spans as incomplete spans", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		a, _ := contiguous(s.spanCount, "a span %d")
		b, _ := contiguous(s.spanCount, "b span %d")
		return a >= 2000 && b >= 500 && s.spans["a open 2"]["otlp_mmap.incomplete"] == true
	})
	time.Sleep(500 * time.Millisecond)
	s.snapshot(func() {
		for name, n := range s.spanCount {
			if n != 1 {
				t.Fatalf("span %q arrived %d times", name, n)
			}
		}
		if len(s.spanCount) != 2503 {
			t.Fatalf("%d spans, want 2503", len(s.spanCount))
		}
	})
	c.stop(t)
	if strings.Contains(c.log(), "Ignoring the checkpoint") || strings.Contains(c.log(), "Cannot store") {
		t.Fatalf("a checkpoint was ignored or not stored:\n%s", tail(c.log(), 4000))
	}
}
