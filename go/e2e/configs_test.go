package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShippedConfigsStartWithoutDeprecationWarnings starts otelcol-mmap with
// every config in testdata/configs until it is ready, and fails on any
// deprecation warning (a component used under a deprecated alias, a
// deprecated setting).
func TestShippedConfigsStartWithoutDeprecationWarnings(t *testing.T) {
	configs, err := filepath.Glob(filepath.Join("..", "..", "testdata", "configs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) == 0 {
		t.Fatal("no configs in testdata/configs")
	}
	for _, path := range configs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, "collector.log")
			log, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			// Info level whatever the config says: the "ready" line is an info line.
			cmd := exec.Command(env(t, "OTELCOL_MMAP"), "--config", path, "--set=service::telemetry::logs::level=info")
			cmd.Env = append(os.Environ(), "OTLP_MMAP_DIR="+dir,
				fmt.Sprintf("OTLP_GATEWAY_ENDPOINT=127.0.0.1:%d", freePort(t)),
				fmt.Sprintf("OTLP_HTTP_ENDPOINT=http://127.0.0.1:%d", freePort(t)))
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			readLog := func() string {
				out, _ := os.ReadFile(logPath)
				return string(out)
			}
			waitFor(t, "the Collector to be ready", 60*time.Second, func() bool {
				select {
				case err := <-exited:
					t.Fatalf("otelcol-mmap exited (%v) before it was ready:\n%s", err, readLog())
				default:
				}
				return strings.Contains(readLog(), "Everything is ready")
			})
			_ = cmd.Process.Signal(os.Interrupt)
			if err := <-exited; err != nil {
				t.Errorf("otelcol-mmap did not stop cleanly: %v\n%s", err, readLog())
			}
			checkNoDeprecationWarning(t, filepath.Base(path), readLog())
		})
	}
}

// checkNoDeprecationWarning fails the test for every line of a Collector's
// log that reports something deprecated.
func checkNoDeprecationWarning(t *testing.T, name, log string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(strings.ToLower(line), "deprecated") {
			t.Errorf("%s logged a deprecation warning: %s", name, line)
		}
	}
}
