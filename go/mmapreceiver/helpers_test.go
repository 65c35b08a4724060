package mmapreceiver

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
)

const (
	testRingSlots = 4096
	testSlotSize  = 512
	idKey         = "test_id"
	testMetric    = "test.counter"
)

// testConfig reads dir/*.otlp with short intervals so tests run fast.
func testConfig(dir string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Include = []string{filepath.Join(dir, "*.otlp")}
	cfg.PollInterval = time.Millisecond
	cfg.ScanInterval = 20 * time.Millisecond
	cfg.Metrics.CollectionInterval = 50 * time.Millisecond
	cfg.RetryOnFailure.InitialInterval = time.Millisecond
	cfg.RetryOnFailure.MaxInterval = 10 * time.Millisecond
	return cfg
}

// testWriter writes records with unique ids into one file. It is safe for
// concurrent use and retries while the ring is full (the library drops a
// record it reports as full, so retrying cannot duplicate it).
type testWriter struct {
	t    testing.TB
	path string
	mu   sync.Mutex
	w    *ffitest.Writer
}

var idSeq atomic.Int64

func nextID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, idSeq.Add(1))
}

func newTestWriter(t testing.TB, path string) *testWriter {
	t.Helper()
	w, err := ffitest.CreateWriter(path, testRingSlots, testSlotSize)
	require.NoError(t, err)
	tw := &testWriter{t: t, path: path, w: w}
	t.Cleanup(func() { tw.close() })
	return tw
}

func (tw *testWriter) close() {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.w != nil {
		_ = tw.w.Close()
		tw.w = nil
	}
}

func (tw *testWriter) retry(write func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		tw.mu.Lock()
		err := write()
		tw.mu.Unlock()
		if ffi.Code(err) != ffi.StatusErrFull || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

func randomIDs() (tid [16]byte, sid [8]byte) {
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return tid, sid
}

// span writes a completed span named "span <id>" with test_id=id.
func (tw *testWriter) span(id string) error {
	tid, sid := randomIDs()
	end := time.Now()
	start := end.Add(-time.Millisecond)
	return tw.retry(func() error {
		return tw.w.Span(tid, sid, "span "+id, idKey, id, start, end)
	})
}

// log writes a log record with body "log <id>" and test_id=id.
func (tw *testWriter) log(id string) error {
	return tw.retry(func() error {
		return tw.w.Log("log "+id, idKey, id, time.Now())
	})
}

// count adds v to the series test_id=id of testMetric.
func (tw *testWriter) count(id string, v int64) error {
	return tw.retry(func() error {
		return tw.w.CounterAdd(testMetric, idKey, id, v, time.Now())
	})
}

// collected gathers what reached a sink, keyed by test_id.
type collected struct {
	spans      map[string]ptrace.Span
	spanDups   []string
	logs       map[string]plog.LogRecord
	logDups    []string
	sums       map[string]int64 // latest cumulative value per series
	missingIDs int
}

func newCollected() *collected {
	return &collected{spans: map[string]ptrace.Span{}, logs: map[string]plog.LogRecord{}, sums: map[string]int64{}}
}

func idOf(attrs pcommon.Map) (string, bool) {
	v, ok := attrs.Get(idKey)
	if !ok || v.Type() != pcommon.ValueTypeStr {
		return "", false
	}
	return v.Str(), true
}

func (c *collected) addTraces(all []ptrace.Traces) {
	for _, td := range all {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			sss := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					s := spans.At(k)
					id, ok := idOf(s.Attributes())
					if !ok {
						c.missingIDs++
						continue
					}
					if _, dup := c.spans[id]; dup {
						c.spanDups = append(c.spanDups, id)
					}
					c.spans[id] = s
				}
			}
		}
	}
}

func (c *collected) addLogs(all []plog.Logs) {
	for _, ld := range all {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				recs := sls.At(j).LogRecords()
				for k := 0; k < recs.Len(); k++ {
					r := recs.At(k)
					id, ok := idOf(r.Attributes())
					if !ok {
						c.missingIDs++
						continue
					}
					if _, dup := c.logs[id]; dup {
						c.logDups = append(c.logDups, id)
					}
					c.logs[id] = r
				}
			}
		}
	}
}

// addMetrics keeps, for every series of testMetric, the value of the data
// point with the latest timestamp (sums are cumulative).
func (c *collected) addMetrics(all []pmetric.Metrics) {
	latest := map[string]pcommon.Timestamp{}
	for _, md := range all {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			sms := md.ResourceMetrics().At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != testMetric || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					dps := m.Sum().DataPoints()
					for l := 0; l < dps.Len(); l++ {
						dp := dps.At(l)
						id, ok := idOf(dp.Attributes())
						if !ok {
							c.missingIDs++
							continue
						}
						if ts, seen := latest[id]; !seen || dp.Timestamp() >= ts {
							latest[id] = dp.Timestamp()
							c.sums[id] = dp.IntValue()
						}
					}
				}
			}
		}
	}
}
