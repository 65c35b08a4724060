package mmapreceiver

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pipeline"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// fileGenerator writes records with unique test ids into an OTLP-MMAP file
// through the library's C writer; the receiver under test reads that file.
type fileGenerator struct {
	t      *testing.T
	dir    string
	signal pipeline.Signal
	runs   int
	w      *testWriter
}

func (g *fileGenerator) Start() {
	// A fresh file per scenario. The receiver of the previous scenario is
	// already shut down (it is stopped before the generator), so its file
	// can go.
	if g.w != nil {
		require.NoError(g.t, os.Remove(g.w.path))
	}
	g.runs++
	path := filepath.Join(g.dir, fmt.Sprintf("contract-%s-%d.otlp", g.signal, g.runs))
	g.w = newTestWriter(g.t, path)
}

func (g *fileGenerator) Stop() {
	g.w.close()
}

func (g *fileGenerator) Generate() []receivertest.UniqueIDAttrVal {
	id := nextID("contract")
	var err error
	switch g.signal {
	case pipeline.SignalTraces:
		err = g.w.span(id)
	case pipeline.SignalLogs:
		err = g.w.log(id)
	case pipeline.SignalMetrics:
		err = g.w.count(id, 1)
	}
	require.NoError(g.t, err)
	return []receivertest.UniqueIDAttrVal{receivertest.UniqueIDAttrVal(id)}
}

func checkContract(t *testing.T, signal pipeline.Signal) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	// One collection after the generator is done: a cumulative series
	// collected twice would count as a duplicate for the checker. Later
	// collections are skipped because nothing new was measured.
	cfg.Metrics.CollectionInterval = time.Second
	// Small batches, so that every scenario makes many consume decisions.
	cfg.Traces.MaxBatchSize = 16
	cfg.Logs.MaxBatchSize = 16
	gen := &fileGenerator{t: t, dir: dir, signal: signal}
	receivertest.CheckConsumeContract(receivertest.CheckConsumeContractParams{
		T:             t,
		Factory:       NewFactory(),
		Signal:        signal,
		Config:        cfg,
		Generator:     gen,
		GenerateCount: 1000,
	})
}

func TestConsumeContractTraces(t *testing.T) {
	checkContract(t, pipeline.SignalTraces)
}

func TestConsumeContractLogs(t *testing.T) {
	checkContract(t, pipeline.SignalLogs)
}

func TestConsumeContractMetrics(t *testing.T) {
	checkContract(t, pipeline.SignalMetrics)
}
