//go:build !cgo

package ffi

// The mmap receiver calls the otlp-mmap-ffi Rust library through cgo. The
// Collector Builder (ocb) disables cgo unless the manifest says
// `cgo_enabled: true` under `dist:`; this file stops a build without cgo with
// the name below in the error.
var _ = mmapreceiver_requires_cgo_set_cgo_enabled_true_in_the_builder_manifest
