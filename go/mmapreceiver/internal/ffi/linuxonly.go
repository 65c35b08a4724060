//go:build !linux

package ffi

// The mmap receiver runs on Linux only: the reader tells a live writer from a
// gone one by Linux open file description (OFD) locks, which other systems
// lack. This file stops the build on any other system with the name below in
// the error, rather than with a link error from the Rust library. (It is not
// named *_linux.go: Go would read that suffix as a build constraint.)
var _ = mmapreceiver_requires_linux_OFD_locks
