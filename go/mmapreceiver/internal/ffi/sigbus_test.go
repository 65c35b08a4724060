package ffi_test

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
)

// openGuardedReader opens a reader, which installs the library's SIGBUS
// guard in this process.
func openGuardedReader(t *testing.T) (*ffi.Reader, *ffitest.Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "guard.otlp")
	w, err := ffitest.CreateWriter(path, 64, 512)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	r, err := ffitest.OpenReader(path, ffi.DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, w, path
}

// With the guard installed, Go's own faults behave as before: a nil
// dereference is a recoverable panic.
func TestGoNilDereferenceStillPanicsWithTheGuardInstalled(t *testing.T) {
	openGuardedReader(t)
	var p *int
	recovered := func() (r any) {
		defer func() { r = recover() }()
		return *p
	}()
	require.NotNil(t, recovered)
	assert.Contains(t, recovered.(error).Error(), "nil pointer dereference")
}

// A SIGBUS in Go's own mapping reaches the Go runtime's handler (which the
// guard forwards to): with SetPanicOnFault it is a recoverable panic.
func TestGoSigbusStillReachesTheGoRuntime(t *testing.T) {
	openGuardedReader(t)
	path := filepath.Join(t.TempDir(), "go-mapped")
	require.NoError(t, os.WriteFile(path, make([]byte, 1<<16), 0o600))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	data, err := syscall.Mmap(int(f.Fd()), 0, 1<<16, syscall.PROT_READ, syscall.MAP_SHARED)
	require.NoError(t, err)
	defer func() { _ = syscall.Munmap(data) }()
	require.NoError(t, f.Truncate(0))

	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	recovered := func() (r any) {
		defer func() { r = recover() }()
		return data[1<<15]
	}()
	require.NotNil(t, recovered, "the fault did not reach the Go runtime")
	// The runtime's fault error carries the faulting address.
	fault, ok := recovered.(interface{ Addr() uintptr })
	require.True(t, ok, "not a memory fault: %v", recovered)
	assert.Equal(t, uintptr(unsafe.Pointer(&data[1<<15])), fault.Addr())
}

// The library's own mapping of a file truncated under it: no crash, the
// reader reports the file as shrunk.
func TestATruncatedFileFailsThePollInsteadOfKillingTheProcess(t *testing.T) {
	r, w, path := openGuardedReader(t)
	require.NoError(t, w.Log("before", "k", "v", time.Now()))
	require.NoError(t, os.Truncate(path, 0))
	var err error
	for _, sig := range ffi.Signals {
		if _, _, err = r.Poll(sig, time.Now()); err != nil {
			break
		}
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "shrank")
}
