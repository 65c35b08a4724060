package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOwnDistribution runs a user's own distribution (the mmap receiver with
// contrib's filelog receiver and resource processor, built from
// testdata/own-distribution by scripts/own-distribution-test.sh, which sets
// OWN_DISTRIBUTION): everything a writer puts in an OTLP-MMAP file, and every
// line of a log file, arrives at the OTLP endpoint through the processor.
func TestOwnDistribution(t *testing.T) {
	bin := os.Getenv("OWN_DISTRIBUTION")
	if bin == "" {
		t.Skip("OWN_DISTRIBUTION is not set: run `make test-own-distribution`")
	}
	s := newSink(t)
	dir := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "app.log")
	const lines = 20
	var text strings.Builder
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&text, "app log line %d\n", i)
	}
	if err := os.WriteFile(logFile, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	collectorBinary(t, bin, "own-distribution", fmt.Sprintf(`
receivers:%s
  file_log:
    include: [%q]
    start_at: beginning
processors:
  resource:
    attributes:
      - {key: service.name, value: own-distribution, action: upsert}
exporters:
  otlp_http:
    endpoint: %q
    compression: none
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces:  {receivers: [mmap], processors: [resource], exporters: [otlp_http]}
    logs:    {receivers: [mmap, file_log], processors: [resource], exporters: [otlp_http]}
    metrics: {receivers: [mmap], processors: [resource], exporters: [otlp_http]}
`, mmapReceiver(dir), logFile, s.url))

	const n = 500
	writeSample(t, dir, n)
	waitFor(t, "every log line and everything the writer wrote", 60*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := 0; i < lines; i++ {
			if s.logs[fmt.Sprintf("app log line %d", i)] == 0 {
				return false
			}
		}
		return len(s.logs) >= n+lines && len(s.spans) >= n && s.metrics["sample.requests"] == int64(n)
	})
	checkSample(t, s, n)

	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < lines; i++ {
		if c := s.logs[fmt.Sprintf("app log line %d", i)]; c != 1 {
			t.Fatalf("log line %d arrived %d times", i, c)
		}
	}
	if len(s.logs) != n+lines {
		t.Fatalf("got %d distinct log records, want %d from the writer and %d from the log file", len(s.logs), n, lines)
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("request %d", i)
		if svc := s.spanService[name]; svc != "own-distribution" {
			t.Fatalf("span %q has service.name %q: the resource processor did not run", name, svc)
		}
	}
}
