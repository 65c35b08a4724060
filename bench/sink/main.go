// Command sink is the OTLP/HTTP endpoint of the latency benchmark
// (bench/run.py): for every span it receives on /v1/traces it records the
// delay between the span's end time (set by the application, same machine,
// same clock) and the moment the request carrying it arrived.
//
//	sink -listen 127.0.0.1:PORT
//
// GET /stats returns {"count":N,"p50_ms":..,"p90_ms":..,"p99_ms":..,"max_ms":..}
// over the spans received since the last POST /reset.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

type recorder struct {
	mu    sync.Mutex
	delay []float64 // milliseconds
}

func (r *recorder) traces(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	er := ptraceotlp.NewExportRequest()
	if err := er.UnmarshalProto(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	rss := er.Traces().ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				end := int64(spans.At(k).EndTimestamp())
				r.delay = append(r.delay, float64(now-end)/1e6)
			}
		}
	}
	r.mu.Unlock()
	ok(w)
}

func ok(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func (r *recorder) stats(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if req.Method == http.MethodPost {
		r.delay = r.delay[:0]
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	d := append([]float64(nil), r.delay...)
	r.mu.Unlock()
	sort.Float64s(d)
	out := map[string]any{"count": len(d), "p50_ms": pct(d, 0.50), "p90_ms": pct(d, 0.90),
		"p99_ms": pct(d, 0.99), "max_ms": pct(d, 1)}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:4320", "address to listen on")
	flag.Parse()
	r := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/traces", r.traces)
	mux.HandleFunc("/v1/logs", func(w http.ResponseWriter, _ *http.Request) { ok(w) })
	mux.HandleFunc("/v1/metrics", func(w http.ResponseWriter, _ *http.Request) { ok(w) })
	mux.HandleFunc("/stats", r.stats)
	mux.HandleFunc("/reset", r.stats)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
