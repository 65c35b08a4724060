package ffitest_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Only tests import ffitest: the receiver package, as the Collector builds
// it, does not depend on it.
func TestNotInTheReceiversBuild(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/otelcol-mmap/mmapreceiver").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/otelcol-mmap/mmapreceiver/internal/ffi")
	require.NotContains(t, deps, "github.com/otelcol-mmap/mmapreceiver/internal/ffitest")
}
