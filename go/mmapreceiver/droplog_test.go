package mmapreceiver

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

func TestDropWarningsAreRateLimitedAndCarryTheCounts(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	logger := zap.New(core)
	var d dropWarner
	t0 := time.Unix(1000, 0)
	s := ffi.Stats{}
	d.observe(logger, "/f", &s, t0, false)
	if logs.Len() != 0 {
		t.Fatalf("warned with nothing lost: %v", logs.All())
	}
	s.AbandonedSlots[ffi.Logs] = 2
	d.observe(logger, "/f", &s, t0, false)
	s.CorruptRecords[ffi.Traces] = 5
	d.observe(logger, "/f", &s, t0.Add(time.Second), false) // too soon
	if logs.Len() != 1 {
		t.Fatalf("%d warnings, want 1 (rate-limited)", logs.Len())
	}
	first := logs.All()[0].ContextMap()
	if first["lost_since_last_warning"] != uint64(2) || first["path"] != "/f" {
		t.Fatalf("first warning: %v", first)
	}
	d.observe(logger, "/f", &s, t0.Add(dropWarnInterval), false)
	if logs.Len() != 2 || logs.All()[1].ContextMap()["lost_since_last_warning"] != uint64(5) {
		t.Fatalf("second warning: %v", logs.All())
	}
	s.BadRefs = 1
	d.observe(logger, "/f", &s, t0.Add(dropWarnInterval+time.Second), true) // closing: not held back
	if logs.Len() != 3 {
		t.Fatalf("the final warning was held back: %v", logs.All())
	}
	d.observe(logger, "/f", &s, t0.Add(3*dropWarnInterval), true)
	if logs.Len() != 3 {
		t.Fatal("warned again with nothing new lost")
	}
}
