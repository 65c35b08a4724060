package e2e

// The reliability suite (GitHub issue 9): what happens to telemetry when the
// writing application or the Collector is killed, when files are truncated,
// replaced or shared, when the pipeline refuses, and with many writers.
// Results and bounds are summarized in RELIABILITY.md.
//
// The short versions run in `make test`. With SOAK=1 (`make soak`) the soak
// variants run instead, for SOAK_SECONDS (default 60) each.
//
// Environment: besides the variables of e2e_test.go, CRASHY (the
// examples/crashy test writer of opentelemetry-mmap).

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---- processes ----

// proc is a started otelcol-mmap.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// startCollector starts otelcol-mmap; unlike collector() it returns the
// process so that a test can kill it. It is stopped at the end of the test.
func startCollector(t *testing.T, name, config string, extraEnv ...string) *proc {
	t.Helper()
	return startCollectorWithArgs(t, name, config, nil, extraEnv...)
}

// startCollectorWithArgs is startCollector with more command-line arguments
// after the config (another --config, --set).
func startCollectorWithArgs(t *testing.T, name, config string, args []string, extraEnv ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env(t, "OTELCOL_MMAP"), append([]string{"--config", path}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.alive() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-p.exited
			}
		}
		checkNoDeprecationWarning(t, name, p.log())
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			if len(out) > 200000 {
				out = out[len(out)-200000:]
			}
			t.Logf("%s log (tail):\n%s", name, out)
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

func (p *proc) log() string {
	out, _ := os.ReadFile(p.logPath)
	return string(out)
}

// procStatus returns a field of /proc/PID/status as a number (kB for VmRSS).
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(strings.TrimPrefix(line, field+":"))
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// writer is a running crashy test writer.
type writer struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	ready   bool
	written int64            // every record below this one is published
	last    map[string]int64 // the last "published t0=.. t1=.." line (--threads)
	done    map[string]int64
	exited  chan struct{}
}

// startWriter runs crashy PATH args...; ring sizes can be set with OTEL_MMAP_* in extraEnv.
func startWriter(t *testing.T, path string, extraEnv []string, args ...string) *writer {
	t.Helper()
	cmd := exec.Command(env(t, "CRASHY"), append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &writer{cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			kv := map[string]int64{}
			for _, f := range strings.Fields(line) {
				if k, v, ok := strings.Cut(f, "="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					kv[k] = n
				}
			}
			w.mu.Lock()
			if strings.HasPrefix(line, "ready") {
				w.ready = true
			}
			if n, ok := kv["written"]; ok {
				w.written = n
			}
			if strings.HasPrefix(line, "done") {
				w.done = kv
			}
			if strings.HasPrefix(line, "published") {
				w.last = kv
			}
			w.mu.Unlock()
		}
		_ = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.exited
	})
	return w
}

func (w *writer) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, "the writer to be ready", 30*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.ready
	})
}

func (w *writer) waitDone(t *testing.T, timeout time.Duration) map[string]int64 {
	t.Helper()
	waitFor(t, "the writer to finish", timeout, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.done != nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

func (w *writer) writtenSoFar() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// kill SIGKILLs the writer and returns how many records it had reported as published.
func (w *writer) kill(t *testing.T) int64 {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.exited
	return w.writtenSoFar()
}

// ---- configuration ----

type rxOpts struct {
	traceBatch, logBatch int
	queue                bool // keep the exporter's in-memory sending queue
	keepFiles            bool // delete_after_drain: false (the test inspects dead writers' files)
}

// reliabilityConfig: one mmap receiver on dir/*.otlp, an otlp_http exporter
// without an in-memory sending queue (so that a batch the receiver committed
// has reached the sink) and without exporter retries (the receiver retries).
func reliabilityConfig(dir, url string, o rxOpts) string {
	if o.traceBatch == 0 {
		o.traceBatch = 100
	}
	if o.logBatch == 0 {
		o.logBatch = 100
	}
	queue := "sending_queue: {enabled: false}"
	if o.queue {
		queue = "sending_queue: {enabled: true, num_consumers: 4}"
	}
	return fmt.Sprintf(`
receivers:
  mmap:
    include: [%q]
    delete_after_drain: %t
    poll_interval: 5ms
    scan_interval: 100ms
    traces: {max_batch_size: %d}
    logs: {max_batch_size: %d}
    metrics: {collection_interval: 500ms}
    retry_on_failure: {initial_interval: 10ms, max_interval: 200ms}
exporters:
  otlp_http:
    endpoint: %q
    compression: none
    %s
    retry_on_failure: {enabled: false}
service:
  telemetry: {metrics: {level: none}}
%s`, filepath.Join(dir, "*.otlp"), !o.keepFiles, o.traceBatch, o.logBatch, url, queue, fmt.Sprintf(pipelines, "mmap", "otlp_http"))
}

// ---- checks ----

// contiguous reports how many of "prefix i" (i = 0, 1, ...) arrived without a
// gap, and the first name received more than once.
func contiguous(counts map[string]int, format string) (n int, dup string) {
	for i := 0; ; i++ {
		name := fmt.Sprintf(format, i)
		c := counts[name]
		if c == 0 {
			return i, dup
		}
		if c > 1 && dup == "" {
			dup = name
		}
	}
}

func (s *sink) snapshot(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *sink) lastMetric(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.svcMetrics[key]
	if len(v) == 0 {
		return -1
	}
	return v[len(v)-1].value
}

func soak() bool { return os.Getenv("SOAK") != "" }

func soakDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("SOAK_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 60 * time.Second
}

// ---- 1. the application is killed ----

// TestWriterKilledMidStream: an app writing 2000 records/s with 5 spans open
// is SIGKILLed. Every record it had reported as published arrives exactly
// once; the open spans arrive as incomplete spans within a few seconds (the
// reader notices the released writer lock), not after max_span_age (10m).
func TestWriterKilledMidStream(t *testing.T) {
	rounds := 1
	if soak() {
		rounds = int(soakDuration() / (5 * time.Second))
	}
	for r := range rounds {
		t.Run(fmt.Sprintf("round-%d", r), writerKilledRound)
	}
}

func writerKilledRound(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{}))
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--count", "1000", "--open", "5", "--rate", "2000")
	w.waitReady(t)
	time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
	published := w.kill(t)
	killedAt := time.Now()
	t.Logf("killed the writer after %d published records", published)

	waitFor(t, "the 5 open spans as incomplete spans", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range 5 {
			if s.spans[fmt.Sprintf("c open %d", k)]["otlp_mmap.incomplete"] != true {
				return false
			}
		}
		return true
	})
	t.Logf("incomplete spans arrived %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	waitFor(t, "every published span and log", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		spans, _ := contiguous(s.spanCount, "c span %d")
		logs, _ := contiguous(s.logs, "c log %d")
		return int64(spans) >= published && int64(logs) >= published
	})
	time.Sleep(time.Second) // let duplicates, if any, arrive
	s.snapshot(func() {
		spans, dupSpan := contiguous(s.spanCount, "c span %d")
		logs, dupLog := contiguous(s.logs, "c log %d")
		if dupSpan != "" || dupLog != "" {
			t.Fatalf("delivered more than once: span %q, log %q", dupSpan, dupLog)
		}
		for i := 0; i < spans; i++ {
			if attrs := s.spans[fmt.Sprintf("c span %d", i)]; attrs["otlp_mmap.incomplete"] == true && int64(i) < published {
				t.Fatalf("span %d was published complete but arrived incomplete: %v", i, attrs)
			}
		}
		// Besides 0..spans-1 and the open spans, at most the one span that was
		// being written at the kill (complete or incomplete) may be there.
		if extra := len(s.spanCount) - spans - 5; extra > 1 {
			t.Fatalf("%d unexpected spans", extra)
		}
		if len(s.logs) != logs {
			t.Fatalf("%d logs arrived, %d of them contiguous", len(s.logs), logs)
		}
		t.Logf("delivered %d spans and %d logs (published at the kill: %d), each once", spans, logs, published)
	})
	waitFor(t, "the counter", 10*time.Second, func() bool { return s.lastMetric("crashy/crashy.count") >= published })
}

// ---- 2. the Collector is killed ----

// TestCollectorKilledAndRestarted: the Collector is SIGKILLed while an app
// writes 2000 records/s, and started again on the same files. Logs: nothing
// lost, at most one batch (max_batch_size 100) duplicated. Spans and
// metrics: the loss is measured and bounded as README documents.
func TestCollectorKilledAndRestarted(t *testing.T) {
	rounds := 1
	if soak() {
		rounds = int(soakDuration() / (4 * time.Second))
	}
	const rate = 2000
	const batch = 100
	s := newSink(t)
	dir := t.TempDir()
	cfg := reliabilityConfig(dir, s.url, rxOpts{traceBatch: batch, logBatch: batch})
	runFor := time.Duration(rounds)*4*time.Second + 2*time.Second
	w := startWriter(t, filepath.Join(dir, "app.otlp"), nil, "--rate", fmt.Sprint(rate), "--duration-secs", fmt.Sprint(runFor.Seconds()))
	w.waitReady(t)
	var restarts []time.Time
	c := startCollector(t, "collector-0", cfg)
	for r := range rounds {
		time.Sleep(time.Duration(1500+rand.IntN(2000)) * time.Millisecond)
		c.kill(t)
		time.Sleep(200 * time.Millisecond)
		restarts = append(restarts, time.Now())
		c = startCollector(t, fmt.Sprintf("collector-%d", r+1), cfg)
	}
	done := w.waitDone(t, runFor+30*time.Second)
	written := done["written"]
	if done["dropped_spans"]+done["dropped_logs"]+done["dropped_measurements"] != 0 {
		t.Fatalf("the writer dropped records: %v", done)
	}
	waitFor(t, "every log", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n, _ := contiguous(s.logs, "c log %d")
		return int64(n) >= written
	})
	time.Sleep(time.Second)
	s.snapshot(func() {
		dups := 0
		for _, c := range s.logs {
			dups += c - 1
		}
		if len(s.logs) != int(written) {
			t.Fatalf("%d distinct logs, %d written", len(s.logs), written)
		}
		if dups > batch*rounds {
			t.Fatalf("%d logs duplicated over %d crashes, more than one batch (%d) per crash", dups, rounds, batch)
		}
		complete := 0
		startMissing := 0
		for name, attrs := range s.spans {
			if strings.HasPrefix(name, "c span ") && attrs["otlp_mmap.incomplete"] != true {
				complete++
			}
			if attrs["otlp_mmap.start_missing"] == true {
				startMissing++
			}
		}
		lost := int(written) - complete
		// Per crash: the assembler's completed spans (< 1 batch) + the
		// pending batch (1 batch) + the span being assembled.
		bound := rounds * (2*batch + 2)
		t.Logf("%d crash(es): logs: %d written, none lost, %d duplicated; spans: %d lost (bound %d), %d start_missing spans",
			rounds, written, dups, lost, bound, startMissing)
		if lost < 0 || lost > bound {
			t.Fatalf("%d spans lost over %d crashes, bound %d", lost, rounds, bound)
		}
	})
	// Metrics: each Collector reports the cumulative count of what it
	// aggregated itself. Delivered = sum over the Collectors of the last
	// value each sent; lost = what the killed ones aggregated since their
	// last delivered collection (collection_interval 500ms).
	time.Sleep(1500 * time.Millisecond) // three collections after the writer finished
	s.snapshot(func() {
		v := s.svcMetrics["crashy/crashy.count"]
		var delivered int64
		k := 0
		for _, at := range append(restarts, time.Now().Add(time.Hour)) {
			var last int64
			for ; k < len(v) && v[k].at.Before(at); k++ {
				last = v[k].value
			}
			delivered += last
		}
		lost := written - delivered
		bound := int64(rounds) * rate * 1500 / 1000 // 0.5s collection interval + 1s slack per crash
		t.Logf("metrics: %d measurements, %d delivered, %d lost (bound %d)", written, delivered, lost, bound)
		if lost < 0 || lost > bound {
			t.Fatalf("metrics: %d lost over %d crashes, bound %d", lost, rounds, bound)
		}
	})
}

// ---- 3. the application starts over on the same path ----

// TestWriterStartsOverOnSamePath: a second app creates its file at the path
// of a first one (tmp + rename: another inode, another start time) while the
// first still runs. Both streams arrive complete, each with its own resource.
func TestWriterStartsOverOnSamePath(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{}))
	path := filepath.Join(dir, "app.otlp")
	first := startWriter(t, path, nil, "--service", "first", "--prefix", "a", "--count", "500", "--open", "3")
	first.waitReady(t)
	time.Sleep(300 * time.Millisecond)
	second := startWriter(t, path, nil, "--service", "second", "--prefix", "b", "--count", "500", "--open", "2")
	second.waitReady(t)
	waitFor(t, "both streams' finished spans", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		a, _ := contiguous(s.spanCount, "a span %d")
		b, _ := contiguous(s.spanCount, "b span %d")
		return a >= 500 && b >= 500
	})
	first.kill(t)
	second.kill(t)
	waitFor(t, "the open spans of both streams, as incomplete spans", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, name := range []string{"a open 0", "a open 1", "a open 2", "b open 0", "b open 1"} {
			if s.spans[name]["otlp_mmap.incomplete"] != true {
				return false
			}
		}
		return true
	})
	waitFor(t, "both counters", 10*time.Second, func() bool {
		return s.lastMetric("first/crashy.count") == 500 && s.lastMetric("second/crashy.count") == 500
	})
	s.snapshot(func() {
		for name, c := range s.spanCount {
			want := map[byte]string{'a': "first", 'b': "second"}[name[0]]
			if c != 1 || s.spanService[name] != want {
				t.Fatalf("span %q arrived %d times with service %q", name, c, s.spanService[name])
			}
		}
		if len(s.spanCount) != 1005 {
			t.Fatalf("%d spans, want 1005", len(s.spanCount))
		}
		a, dupA := contiguous(s.logs, "a log %d")
		b, dupB := contiguous(s.logs, "b log %d")
		if a != 500 || b != 500 || dupA != "" || dupB != "" || len(s.logs) != 1000 {
			t.Fatalf("logs: a %d b %d (dups %q %q), %d in all", a, b, dupA, dupB, len(s.logs))
		}
	})
}

// ---- 4. files truncated, replaced or deleted while mapped ----

// TestFileTruncatedReplacedDeleted: three files are mangled under a running
// Collector (truncated to 4 KiB, deleted, replaced by garbage) while a fourth
// keeps flowing. The Collector does not die (no SIGBUS), logs the problem and
// keeps delivering the other files; a new file is picked up afterwards.
func TestFileTruncatedReplacedDeleted(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	c := startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{keepFiles: true}))
	good := startWriter(t, filepath.Join(dir, "good.otlp"), nil, "--prefix", "g", "--rate", "500")
	good.waitReady(t)
	for _, name := range []string{"trunc", "del", "repl"} {
		startWriter(t, filepath.Join(dir, name+".otlp"), nil, "--prefix", name, "--count", "100", "--exit").waitDone(t, 30*time.Second)
	}
	waitFor(t, "the victims' logs", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, name := range []string{"trunc", "del", "repl"} {
			if n, _ := contiguous(s.logs, name+" log %d"); n < 100 {
				return false
			}
		}
		return true
	})
	if err := os.Truncate(filepath.Join(dir, "trunc.otlp"), 4096); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "del.otlp")); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.tmp")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not an otlp-mmap file\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(garbage, filepath.Join(dir, "repl.otlp")); err != nil {
		t.Fatal(err)
	}
	before := good.writtenSoFar()
	startWriter(t, filepath.Join(dir, "late.otlp"), nil, "--prefix", "late", "--count", "100", "--exit").waitDone(t, 30*time.Second)
	waitFor(t, "the good file and the late file to keep flowing", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, _ := contiguous(s.logs, "g log %d")
		late, _ := contiguous(s.logs, "late log %d")
		return int64(g) > before+500 && late == 100
	})
	waitFor(t, "the truncation to be logged", 10*time.Second, func() bool {
		return strings.Contains(c.log(), "the file shrank") && strings.Contains(c.log(), "repl.otlp")
	})
	if !c.alive() {
		t.Fatal("the Collector died")
	}
	s.snapshot(func() {
		for name, n := range s.logs {
			if n != 1 {
				t.Fatalf("log %q arrived %d times", name, n)
			}
		}
	})
}

// ---- 6. the pipeline refuses ----

// TestPipelineRefuses: the backend answers 503 to everything for a while
// (5s; SOAK: 60s) while an app keeps writing into small rings. The
// Collector's memory stays bounded, the writer drops and counts what does not
// fit, everything that fit is delivered exactly once after the backend
// recovers, without a restart.
func TestPipelineRefuses(t *testing.T) {
	refuseFor := 5 * time.Second
	if soak() {
		refuseFor = soakDuration()
	}
	s := newSink(t)
	dir := t.TempDir()
	c := startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{}))
	ringEnv := []string{"OTEL_MMAP_SPAN_SLOTS=4096", "OTEL_MMAP_LOG_SLOTS=2048", "OTEL_MMAP_METRIC_SLOTS=2048"}
	const rate = 1000
	w := startWriter(t, filepath.Join(dir, "app.otlp"), ringEnv, "--rate", fmt.Sprint(rate),
		"--duration-secs", fmt.Sprint((refuseFor + 2*time.Second).Seconds()))
	w.waitReady(t)
	time.Sleep(time.Second)
	pid := c.cmd.Process.Pid
	baseRSS := procStatus(pid, "VmRSS")
	s.refuse.Store(true)
	var maxRSS int64
	refusedUntil := time.Now().Add(refuseFor)
	for time.Now().Before(refusedUntil) {
		maxRSS = max(maxRSS, procStatus(pid, "VmRSS"))
		time.Sleep(100 * time.Millisecond)
	}
	s.refuse.Store(false)
	done := w.waitDone(t, 30*time.Second)
	t.Logf("refused for %v; writer: %v; Collector RSS %d kB before, at most %d kB while refusing", refuseFor, done, baseRSS, maxRSS)
	if done["dropped_logs"] == 0 {
		t.Fatalf("the test expects the logs ring to overflow: %v", done)
	}
	if maxRSS > baseRSS+100*1024 {
		t.Fatalf("the Collector grew by %d kB while the pipeline refused", maxRSS-baseRSS)
	}
	wantLogs := int(done["written"] - done["dropped_logs"])
	waitFor(t, "every log that fit in the ring", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.logs) >= wantLogs
	})
	wantCount := done["written"] - done["dropped_measurements"]
	waitFor(t, "the counter of every measurement that fit", 10*time.Second, func() bool {
		return s.lastMetric("crashy/crashy.count") == wantCount
	})
	time.Sleep(500 * time.Millisecond)
	s.snapshot(func() {
		if len(s.logs) != wantLogs {
			t.Fatalf("%d logs delivered, want written-dropped = %d", len(s.logs), wantLogs)
		}
		for name, n := range s.logs {
			if n != 1 {
				t.Fatalf("log %q arrived %d times", name, n)
			}
		}
		complete := 0
		for name, attrs := range s.spans {
			if strings.HasPrefix(name, "c span ") && attrs["otlp_mmap.incomplete"] != true {
				complete++
			}
		}
		// A dropped span event costs at most its span.
		if low := int(done["written"] - done["dropped_spans"]); complete < low {
			t.Fatalf("%d complete spans, want at least written-dropped = %d", complete, low)
		}
	})
}

// ---- 7. two Collectors on one file ----

// TestSecondCollectorIsRefused: two Collectors read the same directory. Each
// file is read by exactly one of them (the reader lock); the other logs that
// the file is locked. Nothing arrives twice and the file stays valid.
func TestSecondCollectorIsRefused(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.otlp")
	w := startWriter(t, path, nil, "--count", "1000", "--open", "1")
	w.waitReady(t)
	first := startCollector(t, "first", reliabilityConfig(dir, s.url, rxOpts{}))
	waitFor(t, "the first Collector to read the file", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.logs) > 0
	})
	second := startCollector(t, "second", reliabilityConfig(dir, s.url, rxOpts{}))
	waitFor(t, "the second Collector to report the lock", 30*time.Second, func() bool {
		return strings.Contains(second.log(), "another reader already reads this file")
	})
	waitFor(t, "every record", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.logs) >= 1000 && len(s.spanCount) >= 1000
	})
	time.Sleep(time.Second)
	s.snapshot(func() {
		for name, n := range s.logs {
			if n != 1 {
				t.Fatalf("log %q arrived %d times", name, n)
			}
		}
		for name, n := range s.spanCount {
			if n != 1 {
				t.Fatalf("span %q arrived %d times", name, n)
			}
		}
	})
	if !first.alive() || !second.alive() {
		t.Fatal("a Collector died")
	}
	out, err := exec.Command(env(t, "OTLP_MMAP_TOOL"), "inspect", path).CombinedOutput()
	if err != nil {
		t.Fatalf("the file no longer inspects: %v\n%s", err, out)
	}
}

// ---- 8. many writers ----

// TestManyWriters: 200 applications, each with its own file, write 50
// records each at the same time. Everything arrives; the Collector's threads
// and file descriptors stay bounded.
func TestManyWriters(t *testing.T) {
	n := 200
	if soak() {
		n = 500
	}
	const each = 50
	s := newSink(t)
	dir := t.TempDir()
	// With the exporter's sending queue (the default): without it each of
	// the 3 x n reader goroutines would hold an HTTP connection of its own.
	c := startCollector(t, "collector", reliabilityConfig(dir, s.url, rxOpts{queue: true}))
	ringEnv := []string{"OTEL_MMAP_SPAN_SLOTS=512", "OTEL_MMAP_LOG_SLOTS=256", "OTEL_MMAP_METRIC_SLOTS=256"}
	writers := make([]*writer, n)
	for j := range n {
		writers[j] = startWriter(t, filepath.Join(dir, fmt.Sprintf("app-%03d.otlp", j)), ringEnv,
			"--service", fmt.Sprintf("svc%03d", j), "--prefix", fmt.Sprintf("w%03d", j),
			"--count", fmt.Sprint(each))
	}
	pid := c.cmd.Process.Pid
	var maxThreads int64
	maxFDs := 0
	waitFor(t, "every record of every writer", 90*time.Second, func() bool {
		maxThreads = max(maxThreads, procStatus(pid, "Threads"))
		maxFDs = max(maxFDs, fdCount(pid))
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.logs) >= n*each && len(s.spanCount) >= n*each
	})
	for _, w := range writers {
		if d := w.waitDone(t, 10*time.Second); d["written"] != each {
			t.Fatalf("a writer wrote %v, want %d records", d, each)
		}
	}
	s.snapshot(func() {
		for j := range n {
			sp, dupS := contiguous(s.spanCount, fmt.Sprintf("w%03d span %%d", j))
			lg, dupL := contiguous(s.logs, fmt.Sprintf("w%03d log %%d", j))
			if sp != each || lg != each || dupS != "" || dupL != "" {
				t.Fatalf("writer %d: %d spans, %d logs (dups %q %q)", j, sp, lg, dupS, dupL)
			}
		}
	})
	waitFor(t, "every writer's counter", 10*time.Second, func() bool {
		for j := range n {
			if s.lastMetric(fmt.Sprintf("svc%03d/crashy.count", j)) != each {
				return false
			}
		}
		return true
	})
	t.Logf("%d files: Collector peaked at %d threads and %d file descriptors", n, maxThreads, maxFDs)
	if maxFDs > n+64 {
		t.Fatalf("%d file descriptors for %d files", maxFDs, n)
	}
	if maxThreads > 64 {
		t.Fatalf("%d threads for %d files", maxThreads, n)
	}
}
