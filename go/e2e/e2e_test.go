// Package e2e runs the real otelcol-mmap binary against real writers and
// checks, at an OTLP/HTTP endpoint inside the test, that every span, log
// record and metric point arrived with the right content.
//
// Environment (set by `make test-e2e`): OTELCOL_MMAP (the distribution),
// OTLP_MMAP_TOOL (the otlp-mmap tool), DEMO_APP (the demo application).
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// sink is an OTLP/HTTP server that keeps everything it receives.
type sink struct {
	mu      sync.Mutex
	spans   map[string]map[string]any // span name -> attributes
	logs    map[string]int            // body -> count
	metrics map[string]int64          // metric name -> latest int sum over all points
	other   int
	url     string
	srv     *http.Server

	// Used by the reliability tests.
	spanCount   map[string]int      // span name -> times received
	spanService map[string]string   // span name -> service.name of its resource
	svcMetrics  map[string][]sample // "service/metric" -> every int sum received, in order
	requests    map[string]int      // path -> requests answered 200
	refuse      atomic.Bool         // answer 503 to everything while set
}

// sample is one received value of a metric.
type sample struct {
	at    time.Time
	value int64
	start uint64 // start time of the first point
	time  uint64 // time of the first point
}

// newRecorder is a sink that only keeps what its add methods are given (no server).
func newRecorder() *sink {
	return &sink{spans: map[string]map[string]any{}, logs: map[string]int{}, metrics: map[string]int64{},
		spanCount: map[string]int{}, spanService: map[string]string{}, svcMetrics: map[string][]sample{}, requests: map[string]int{}}
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := newRecorder()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	handle := func(path string, h http.HandlerFunc) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if s.refuse.Load() {
				_, _ = io.Copy(io.Discard, r.Body)
				http.Error(w, "refusing (test)", http.StatusServiceUnavailable)
				return
			}
			h(w, r)
			s.mu.Lock()
			s.requests[path]++
			s.mu.Unlock()
		})
	}
	handle("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.addTraces(req.Traces())
		writeOK(w)
	})
	handle("/v1/logs", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.addLogs(req.Logs())
		writeOK(w)
	})
	handle("/v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.addMetrics(req.Metrics())
		writeOK(w)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// addTraces keeps every span of td.
func (s *sink) addTraces(td ptrace.Traces) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				s.spans[sp.Name()] = sp.Attributes().AsRaw()
				s.spanCount[sp.Name()]++
				s.spanService[sp.Name()] = svc.AsString()
			}
		}
	}
}

// addLogs keeps every log record body of ld.
func (s *sink) addLogs(ld plog.Logs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				s.logs[lrs.At(k).Body().AsString()]++
			}
		}
	}
}

// addMetrics keeps the int sums of md, and that other metrics came.
func (s *sink) addMetrics(md pmetric.Metrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		svc, _ := rms.At(i).Resource().Attributes().Get("service.name")
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() == pmetric.MetricTypeSum {
					var total int64
					var start, at uint64
					dps := m.Sum().DataPoints()
					for p := 0; p < dps.Len(); p++ {
						total += dps.At(p).IntValue()
						if p == 0 {
							start = uint64(dps.At(p).StartTimestamp())
							at = uint64(dps.At(p).Timestamp())
						}
					}
					s.metrics[m.Name()] = total
					key := svc.AsString() + "/" + m.Name()
					s.svcMetrics[key] = append(s.svcMetrics[key], sample{at: time.Now(), value: total, start: start, time: at})
				} else {
					s.metrics[m.Name()] = -1
				}
			}
		}
	}
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the end-to-end tests with `make test-e2e`", name)
	}
	return v
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// collector starts otelcol-mmap with a config and stops it at the end of the test.
func collector(t *testing.T, name, config string, extraEnv ...string) {
	t.Helper()
	collectorBinary(t, env(t, "OTELCOL_MMAP"), name, config, extraEnv...)
}

// collectorBinary starts the Collector binary bin with a config and stops it
// at the end of the test.
func collectorBinary(t *testing.T, bin, name, config string, extraEnv ...string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config", path)
	cmd.Env = append(os.Environ(), extraEnv...)
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = log.Close()
		out, _ := os.ReadFile(log.Name())
		checkNoDeprecationWarning(t, name, string(out))
		if t.Failed() {
			t.Logf("%s log:\n%s", name, out)
		}
	})
}

const pipelines = `
  pipelines:
    traces:  {receivers: [%[1]s], exporters: [%[2]s]}
    logs:    {receivers: [%[1]s], exporters: [%[2]s]}
    metrics: {receivers: [%[1]s], exporters: [%[2]s]}
`

func mmapReceiver(dir string) string {
	return fmt.Sprintf(`
  mmap:
    include: [%q]
    poll_interval: 5ms
    scan_interval: 100ms
    metrics:
      collection_interval: 500ms
`, filepath.Join(dir, "*.otlp"))
}

func waitFor(t *testing.T, what string, timeout time.Duration, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSample asserts that everything `otlp-mmap write-sample --count n` wrote arrived.
func checkSample(t *testing.T, s *sink, n int) {
	t.Helper()
	waitFor(t, "all spans, logs and the counter", 60*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.spans) >= n && len(s.logs) >= n && s.metrics["sample.requests"] == int64(n)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		attrs, ok := s.spans[fmt.Sprintf("request %d", i)]
		if !ok {
			t.Fatalf("span %d missing", i)
		}
		if attrs["request.index"] != int64(i) || attrs["http.route"] != "/sample" {
			t.Fatalf("span %d has attributes %v", i, attrs)
		}
		if c := s.logs[fmt.Sprintf("handled request %d", i)]; c != 1 {
			t.Fatalf("log %d arrived %d times", i, c)
		}
	}
	// write-sample exits at once. The span it never ends is reported only
	// as an incomplete span, and only when the reader saw the writer's lock
	// held and then released (a reader that opened the file after the exit
	// cannot tell the writer is gone, and keeps waiting for the end).
	extra := len(s.spans) - n
	if attrs, ok := s.spans["never ends"]; ok && attrs["otlp_mmap.incomplete"] == true {
		extra--
	}
	if extra != 0 {
		t.Fatalf("got %d spans, want %d (plus at most the never-ended one, as an incomplete span)", len(s.spans), n)
	}
}

func writeSample(t *testing.T, dir string, n int) {
	t.Helper()
	out, err := exec.Command(env(t, "OTLP_MMAP_TOOL"), "write-sample", "--count", fmt.Sprint(n), filepath.Join(dir, "sample.otlp")).CombinedOutput()
	if err != nil {
		t.Fatalf("write-sample: %v\n%s", err, out)
	}
}

func TestCollectorDeliversEverySignal(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	collector(t, "collector", fmt.Sprintf(`
receivers:%s
exporters:
  otlp_http:
    endpoint: %q
    compression: none
service:
  telemetry: {metrics: {level: none}}
%s`, mmapReceiver(dir), s.url, fmt.Sprintf(pipelines, "mmap", "otlp_http")))
	const n = 2000
	writeSample(t, dir, n)
	checkSample(t, s, n)
}

func TestAgentForwardsToGateway(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	port := freePort(t)
	collector(t, "gateway", fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:%d"}
exporters:
  otlp_http:
    endpoint: %q
    compression: none
service:
  telemetry: {metrics: {level: none}}
%s`, port, s.url, fmt.Sprintf(pipelines, "otlp", "otlp_http")))
	agent, err := os.ReadFile(filepath.Join("..", "..", "testdata", "configs", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	collector(t, "agent", string(agent), "OTLP_MMAP_DIR="+dir, fmt.Sprintf("OTLP_GATEWAY_ENDPOINT=127.0.0.1:%d", port))
	const n = 500
	writeSample(t, dir, n)
	// The agent's config collects metrics every 10 s.
	checkSample(t, s, n)
}

func TestDemoAppTelemetryArrives(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	collector(t, "collector", fmt.Sprintf(`
receivers:%s
exporters:
  otlp_http:
    endpoint: %q
    compression: none
service:
  telemetry: {metrics: {level: none}}
%s`, mmapReceiver(dir), s.url, fmt.Sprintf(pipelines, "mmap", "otlp_http")))
	demo := exec.Command(env(t, "DEMO_APP"), filepath.Join(dir, "demo.otlp"), "--duration-secs", "3")
	demo.Env = append(os.Environ(), "OTEL_SERVICE_NAME=e2e-demo")
	if out, err := demo.CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	waitFor(t, "demo spans, logs and metrics", 60*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.spans) > 0 && len(s.logs) > 0 && len(s.metrics) > 0
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name := range s.spans {
		names = append(names, name)
	}
	if len(names) < 2 {
		t.Fatalf("expected nested demo spans of several names, got %v", names)
	}
	t.Logf("demo span names: %s", strings.Join(names, ", "))
}
