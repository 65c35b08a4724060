package e2e

// The exporter's queue across a Collector crash: the shipped fleet agent
// config (testdata/configs/agent.yaml) queues on disk, so what the receiver
// handed over while the gateway refused survives a SIGKILL or a stop of the
// agent.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // the exporter's default compression
	"google.golang.org/grpc/status"
)

// TestPersistentQueueSurvivesAgentRestart: the gateway refuses everything
// (gRPC Unavailable, which the exporter retries); crashy publishes 2000
// records (a span, a log and +1 on a counter each) into the file of an agent
// started with testdata/configs/agent.yaml (receiver storage, persistent
// sending_queue). Once the exporter has offered the gateway every span, every
// log and a counter point with the final count (so the receiver's next
// consumer accepted all of it), and every ring slot is released (otlp-mmap
// inspect: the receiver's checkpoint covers all it read), the agent is
// SIGKILLed (or stopped with SIGINT), the gateway starts accepting, and the
// agent starts again on the same files and storage.
//
//   - persistent, SIGKILL or SIGINT: every span and log arrives (at least
//     once: duplicates are counted, at most the one batch per signal the
//     receiver may offer again), and so do the counter points collected
//     before the stop, the last with the final count;
//   - in-memory, SIGKILL: the same config with `sending_queue::storage`
//     unset. What was queued at the crash is lost (asserted), which shows
//     that the scenario hinges on the queue, so the first case can fail.
//
// A second writer publishes 10 records after the restart; its records
// arriving show that the restarted agent delivers.
func TestPersistentQueueSurvivesAgentRestart(t *testing.T) {
	t.Run("persistent-SIGKILL", func(t *testing.T) { agentRestartWithQueue(t, true, false) })
	t.Run("persistent-SIGINT", func(t *testing.T) { agentRestartWithQueue(t, true, true) })
	t.Run("in-memory-SIGKILL", func(t *testing.T) { agentRestartWithQueue(t, false, false) })
}

func agentRestartWithQueue(t *testing.T, persistent, graceful bool) {
	const n = 2000
	const maxBatch = 1024 // the receiver's default traces and logs max_batch_size
	agent := shippedAgentConfig(t)
	gw := newGateway(t)
	gw.refuse.Store(true)
	dir := t.TempDir()
	agentEnv := []string{"OTLP_MMAP_DIR=" + dir, "OTLP_GATEWAY_ENDPOINT=" + gw.addr}
	// Collect every 500ms rather than every 10s.
	args := []string{"--config=yaml:receivers::mmap::metrics::collection_interval: 500ms"}
	if !persistent {
		args = append(args, "--config=yaml:exporters::otlp_grpc::sending_queue::storage: null")
	}

	c := startCollectorWithArgs(t, "agent-0", agent, args, agentEnv...)
	path := filepath.Join(dir, "app.otlp")
	w := startWriter(t, path, nil, "--count", fmt.Sprint(n))
	if done := w.waitDone(t, 30*time.Second); done["written"] != n || done["dropped_spans"]+done["dropped_logs"]+done["dropped_measurements"] != 0 {
		t.Fatalf("the writer wrote %v, want %d records and no drop", done, n)
	}
	waitForState(t, "the exporter to offer everything and the receiver to release every slot", 30*time.Second, func() (bool, string) {
		var spans, logs int
		var count int64
		gw.refused.snapshot(func() {
			spans, _ = contiguous(gw.refused.spanCount, "c span %d")
			logs, _ = contiguous(gw.refused.logs, "c log %d")
			for _, p := range gw.refused.svcMetrics["crashy/crashy.count"] {
				count = max(count, p.value)
			}
		})
		drained, rings := ringsDrained(fileRings(t, path))
		return spans >= n && logs >= n && count == n && drained,
			fmt.Sprintf("refused so far: %d spans, %d logs, the counter at %d; %s", spans, logs, count, rings)
	})
	if graceful {
		c.stop(t)
		// The exporter logs the batches it was retrying as dropped; with a
		// persistent queue they stay in it (asserted below).
		t.Logf("the stop logged %d \"Dropping data\" lines", strings.Count(c.log(), "Dropping data"))
	} else {
		c.kill(t)
	}
	stoppedAt := uint64(time.Now().UnixNano())

	gw.refuse.Store(false)
	startCollectorWithArgs(t, "agent-1", agent, args, agentEnv...)
	startWriter(t, filepath.Join(dir, "after.otlp"), nil, "--service", "after", "--prefix", "after", "--count", "10")
	s := gw.accepted
	waitFor(t, "the records written after the restart", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		spans, _ := contiguous(s.spanCount, "after span %d")
		logs, _ := contiguous(s.logs, "after log %d")
		return spans >= 10 && logs >= 10
	})
	if persistent {
		waitFor(t, "every span and log written before the crash", 30*time.Second, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			spans, _ := contiguous(s.spanCount, "c span %d")
			logs, _ := contiguous(s.logs, "c log %d")
			return spans >= n && logs >= n
		})
	}
	time.Sleep(time.Second) // let duplicates, or anything else still on its way, arrive
	s.snapshot(func() {
		spans, logs, dupSpans, dupLogs := crashyRecords(s)
		var before []int64 // the counter's points collected before the stop
		for _, p := range s.svcMetrics["crashy/crashy.count"] {
			if p.time < stoppedAt {
				before = append(before, p.value)
			}
		}
		t.Logf("%d records queued at the stop; after the restart %d of %d spans arrived (%d duplicates), %d of %d logs (%d duplicates), %d counter points collected before the stop %v",
			n, spans, n, dupSpans, logs, n, dupLogs, len(before), before)
		if persistent {
			if spans != n || logs != n {
				t.Fatalf("lost with a persistent queue: %d spans, %d logs", n-spans, n-logs)
			}
			// Nothing was exported before the crash, so the queue sends
			// nothing twice; the receiver may offer again the one batch
			// whose delivery marker the crash prevented (its bound).
			if dupSpans > maxBatch || dupLogs > maxBatch {
				t.Fatalf("%d spans and %d logs delivered more than once, more than one batch (%d)", dupSpans, dupLogs, maxBatch)
			}
			if len(before) == 0 || before[len(before)-1] != n {
				t.Fatalf("the counter points collected before the stop: %v, want them to end at %d", before, n)
			}
		} else if spans == n || logs == n || len(before) != 0 {
			t.Fatalf("nothing lost with the in-memory queue (%d spans, %d logs, %d points from before the stop): the test does not exercise the queue",
				spans, logs, len(before))
		}
	})
}

// TestFullPersistentQueueAcrossACrash: agent.yaml with a queue of 2 batches
// per signal and batches of 100 records, the gateway refusing. crashy
// publishes 2000 records; the queue fills, the receiver is refused and
// retries, and the rest waits in the file's rings. The agent is SIGKILLed
// in that state and started again with the gateway accepting: every span
// and log arrives, what was queued from the queue's storage and the rest
// from the rings; duplicates are counted, at most one batch per signal.
func TestFullPersistentQueueAcrossACrash(t *testing.T) {
	const n, batch = 2000, 100
	agent := shippedAgentConfig(t)
	gw := newGateway(t)
	gw.refuse.Store(true)
	dir := t.TempDir()
	metricsPort := freePort(t)
	agentEnv := []string{"OTLP_MMAP_DIR=" + dir, "OTLP_GATEWAY_ENDPOINT=" + gw.addr}
	args := []string{
		"--config=yaml:exporters::otlp_grpc::sending_queue::queue_size: 2",
		fmt.Sprintf("--config=yaml:receivers::mmap: {traces: {max_batch_size: %d}, logs: {max_batch_size: %d}, metrics: {collection_interval: 500ms}}", batch, batch),
		// The agent's own metrics: the receiver's refused counters.
		fmt.Sprintf("--config=yaml:service::telemetry::metrics: {level: basic, readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}}]}", metricsPort),
	}
	c := startCollectorWithArgs(t, "agent-0", agent, args, agentEnv...)
	path := filepath.Join(dir, "app.otlp")
	w := startWriter(t, path, nil, "--count", fmt.Sprint(n))
	if done := w.waitDone(t, 30*time.Second); done["written"] != n || done["dropped_spans"]+done["dropped_logs"]+done["dropped_measurements"] != 0 {
		t.Fatalf("the writer wrote %v, want %d records and no drop", done, n)
	}
	waitForState(t, "the queue to be full: the receiver refused, the gateway offered some", 30*time.Second, func() (bool, string) {
		refusedSpans := scrapeCounter(t, metricsPort, "otelcol_receiver_refused_spans")
		refusedLogs := scrapeCounter(t, metricsPort, "otelcol_receiver_refused_log_records")
		var spans, logs int
		gw.refused.snapshot(func() { spans, logs = len(gw.refused.spanCount), len(gw.refused.logs) })
		return refusedSpans > 0 && refusedLogs > 0 && spans > 0 && logs > 0,
			fmt.Sprintf("the receiver was refused %d spans and %d logs; the gateway was offered %d spans and %d logs", refusedSpans, refusedLogs, spans, logs)
	})
	// A checkpoint in that state (span slots released up to it), so that
	// the restart starts from a checkpoint of the full queue's state.
	var rings string
	waitForState(t, "a checkpoint of the file", 30*time.Second, func() (bool, string) {
		r := fileRings(t, path)
		_, rings = ringsDrained(r)
		if r["events"].reader == r["events"].writer {
			t.Fatalf("every log was accepted (%s): the queue did not fill", rings)
		}
		return r["spans"].reader >= 0, rings
	})
	c.kill(t)

	gw.refuse.Store(false)
	startCollectorWithArgs(t, "agent-1", agent, args, agentEnv...)
	s := gw.accepted
	waitFor(t, "every span and log", 60*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		spans, _ := contiguous(s.spanCount, "c span %d")
		logs, _ := contiguous(s.logs, "c log %d")
		return spans >= n && logs >= n
	})
	waitFor(t, "the counter's final value", 30*time.Second, func() bool { return s.lastMetric("crashy/crashy.count") == n })
	time.Sleep(time.Second) // let duplicates arrive
	s.snapshot(func() {
		spans, logs, dupSpans, dupLogs := crashyRecords(s)
		t.Logf("killed with a full queue (%s); after the restart %d of %d spans (%d duplicates), %d of %d logs (%d duplicates)",
			rings, spans, n, dupSpans, logs, n, dupLogs)
		if spans != n || logs != n {
			t.Fatalf("lost: %d spans, %d logs", n-spans, n-logs)
		}
		if dupSpans > batch || dupLogs > batch {
			t.Fatalf("%d spans and %d logs delivered more than once, more than one batch (%d)", dupSpans, dupLogs, batch)
		}
	})
}

// shippedAgentConfig is testdata/configs/agent.yaml, checked to have a
// persistent exporter queue.
func shippedAgentConfig(t *testing.T) string {
	t.Helper()
	agent, err := os.ReadFile(filepath.Join("..", "..", "testdata", "configs", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(agent), "storage: file_storage/queue") {
		t.Fatal("agent.yaml's exporter queue is not persistent (no storage: file_storage/queue)")
	}
	return string(agent)
}

// crashyRecords counts the distinct spans and logs of crashy's records
// ("c span i", "c log i") in s, and the copies received beyond the first.
// The caller holds s.mu.
func crashyRecords(s *sink) (spans, logs, dupSpans, dupLogs int) {
	for name, k := range s.spanCount {
		if strings.HasPrefix(name, "c span ") {
			spans++
			dupSpans += k - 1
		}
	}
	for body, k := range s.logs {
		if strings.HasPrefix(body, "c log ") {
			logs++
			dupLogs += k - 1
		}
	}
	return spans, logs, dupSpans, dupLogs
}

// gateway is an OTLP/gRPC backend: it refuses every export with
// Unavailable while refuse is set, keeping what it refused in refused, and
// keeps what it accepts in accepted.
type gateway struct {
	addr     string
	refuse   atomic.Bool
	refused  *sink
	accepted *sink
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{addr: ln.Addr().String(), refused: newRecorder(), accepted: newRecorder()}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, &gatewayTraces{g: g})
	plogotlp.RegisterGRPCServer(srv, &gatewayLogs{g: g})
	pmetricotlp.RegisterGRPCServer(srv, &gatewayMetrics{g: g})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return g
}

// to is the recorder an export goes to, and the answer to give.
func (g *gateway) to() (*sink, error) {
	if g.refuse.Load() {
		return g.refused, status.Error(codes.Unavailable, "refusing (test)")
	}
	return g.accepted, nil
}

type gatewayTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	g *gateway
}

type gatewayLogs struct {
	plogotlp.UnimplementedGRPCServer
	g *gateway
}

type gatewayMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	g *gateway
}

func (x *gatewayTraces) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s, err := x.g.to()
	s.addTraces(req.Traces())
	return ptraceotlp.NewExportResponse(), err
}

func (x *gatewayLogs) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	s, err := x.g.to()
	s.addLogs(req.Logs())
	return plogotlp.NewExportResponse(), err
}

func (x *gatewayMetrics) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s, err := x.g.to()
	s.addMetrics(req.Metrics())
	return pmetricotlp.NewExportResponse(), err
}

var ringStateLine = regexp.MustCompile(`(?m)^(\w+) ring:.*reader_index\s+(-?\d+)\s+writer_index\s+(-?\d+)`)

// ringState is a ring's reader_index and writer_index.
type ringState struct{ reader, writer int64 }

// fileRings reads the rings of the file at path with otlp-mmap inspect:
// events (logs), spans and measurements.
func fileRings(t *testing.T, path string) map[string]ringState {
	t.Helper()
	out, err := exec.Command(env(t, "OTLP_MMAP_TOOL"), "inspect", path).CombinedOutput()
	if err != nil {
		t.Fatalf("inspect %s: %v\n%s", path, err, out)
	}
	rings := map[string]ringState{}
	for _, m := range ringStateLine.FindAllStringSubmatch(string(out), -1) {
		reader, _ := strconv.ParseInt(m[2], 10, 64)
		writer, _ := strconv.ParseInt(m[3], 10, 64)
		rings[m[1]] = ringState{reader, writer}
	}
	if len(rings) != 3 {
		t.Fatalf("want the events, spans and measurements rings in:\n%s", out)
	}
	return rings
}

// ringsDrained reports whether every ring in rings is released up to its
// writer_index, and the indices.
func ringsDrained(rings map[string]ringState) (bool, string) {
	drained := true
	var state []string
	for _, name := range []string{"events", "spans", "measurements"} {
		r := rings[name]
		drained = drained && r.reader == r.writer
		state = append(state, fmt.Sprintf("%s ring %d/%d", name, r.reader, r.writer))
	}
	return drained, strings.Join(state, ", ")
}
