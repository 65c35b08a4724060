// Package mmapreceiver implements an OpenTelemetry Collector receiver that
// reads spans, logs and metrics from OTLP-MMAP v1 memory-mapped files through
// the otlp-mmap-ffi Rust library (linked statically via cgo).
//
// The files under internal/metadata and the generated_*_test.go files are
// produced by mdatagen from metadata.yaml; see README.md ("Regenerating").
//
//go:generate mdatagen metadata.yaml
package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"
