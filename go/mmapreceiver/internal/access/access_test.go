package access

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte("contents of "+filepath.Base(path)), 0o600))
	require.NoError(t, os.Chmod(path, mode))
}

// policyFor reads dir/*.otlp with the default settings.
func policyFor(dir string) *Policy {
	return &Policy{Include: []string{filepath.Join(dir, "*.otlp")}, RejectWorldWritable: true}
}

// read returns what the opened file holds.
func read(t *testing.T, f *os.File) string {
	t.Helper()
	defer f.Close()
	b := make([]byte, 100)
	n, err := f.ReadAt(b, 0)
	if err != nil && n == 0 {
		require.NoError(t, err)
	}
	return string(b[:n])
}

func refusal(t *testing.T, err error) string {
	t.Helper()
	var r *RefusedError
	require.ErrorAs(t, err, &r)
	return r.Reason
}

func TestOpenReadsTheInspectedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.otlp")
	writeFile(t, path, 0o640)
	p := policyFor(dir)
	c, err := p.Inspect(path)
	require.NoError(t, err)
	assert.Equal(t, path, c.Path)
	assert.Equal(t, path, c.Target)
	f, err := p.Open(c)
	require.NoError(t, err)
	assert.Equal(t, path, f.Name())
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.FD_CLOEXEC, "not inherited by child processes")
	assert.Equal(t, "contents of app.otlp", read(t, f))
}

// The check-then-open race: the path is swapped for a symbolic link to
// another file after Inspect checked it and before Open.
func TestPathSwappedForALinkBetweenCheckAndOpenIsRefused(t *testing.T) {
	for _, follow := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.otlp")
		writeFile(t, path, 0o600)
		secret := filepath.Join(t.TempDir(), "secret")
		writeFile(t, secret, 0o600)
		p := policyFor(dir)
		p.FollowSymlinks = follow

		c, err := p.Inspect(path)
		require.NoError(t, err)
		require.NoError(t, os.Remove(path))
		require.NoError(t, os.Symlink(secret, path))

		f, err := p.Open(c)
		assert.Nil(t, f)
		require.ErrorIs(t, err, ErrChanged, "follow_symlinks %v", follow)
		assert.ErrorContains(t, err, "symbolic link")
	}
}

func TestPathReplacedBetweenCheckAndOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.otlp")
	writeFile(t, path, 0o600)
	p := policyFor(dir)
	c, err := p.Inspect(path)
	require.NoError(t, err)

	// Another regular file renamed over it.
	other := filepath.Join(dir, "other.tmp")
	writeFile(t, other, 0o600)
	require.NoError(t, os.Rename(other, path))
	_, err = p.Open(c)
	require.ErrorIs(t, err, ErrChanged)
	assert.ErrorContains(t, err, "another file")

	// A FIFO: the open must not block, and the FIFO is not read.
	require.NoError(t, os.Remove(path))
	require.NoError(t, unix.Mkfifo(path, 0o600))
	_, err = p.Open(c)
	require.ErrorIs(t, err, ErrChanged)
}

// A link inside an include directory is followed: Open opens the resolved
// target, and a target swapped for a link after the check is refused.
func TestLinkTargetSwappedBetweenCheckAndOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.data")
	writeFile(t, real, 0o600)
	link := filepath.Join(dir, "app.otlp")
	require.NoError(t, os.Symlink(real, link))
	p := policyFor(dir)

	c, err := p.Inspect(link)
	require.NoError(t, err)
	resolved, err := filepath.EvalSymlinks(real)
	require.NoError(t, err)
	assert.Equal(t, resolved, c.Target)
	f, err := p.Open(c)
	require.NoError(t, err)
	assert.Equal(t, "contents of real.data", read(t, f))

	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secret, 0o600)
	require.NoError(t, os.Remove(real))
	require.NoError(t, os.Symlink(secret, real))
	_, err = p.Open(c)
	require.ErrorIs(t, err, ErrChanged)
}

// Owner and mode are decided on the open descriptor: a change after Inspect
// is seen by Open.
func TestModeAndOwnerCheckedOnTheDescriptor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.otlp")
	writeFile(t, path, 0o600)

	p := policyFor(dir)
	c, err := p.Inspect(path)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(path, 0o666))
	_, err = p.Open(c)
	assert.Contains(t, refusal(t, err), "world-writable")

	require.NoError(t, os.Chmod(path, 0o660))
	p.RejectGroupWritable = true
	_, err = p.Open(c)
	assert.Contains(t, refusal(t, err), "group-writable")
	p.RejectGroupWritable = false

	require.NoError(t, os.Chmod(path, 0o600))
	me := uint32(os.Geteuid())
	p.AllowedOwners = map[uint32]bool{me: true}
	c, err = p.Inspect(path)
	require.NoError(t, err)
	if me == 0 {
		// Give the file away between the check and the open.
		require.NoError(t, os.Chown(path, 65534, 65534))
		_, err = p.Open(c)
		assert.Equal(t, "owned by uid 65534, not one of allowed_owners", refusal(t, err))
	}
	// Whoever runs the test: an owner outside the list is refused at Open
	// even when Inspect let the file through.
	p.AllowedOwners = map[uint32]bool{me + 1: true}
	_, err = p.Open(c)
	assert.Contains(t, refusal(t, err), "not one of allowed_owners")
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	elsewhere := t.TempDir()
	p := policyFor(dir)

	_, err := p.Inspect(filepath.Join(dir, "missing.otlp"))
	assert.ErrorIs(t, err, ErrNotAFile)

	sub := filepath.Join(dir, "sub.otlp")
	require.NoError(t, os.Mkdir(sub, 0o755))
	_, err = p.Inspect(sub)
	assert.ErrorIs(t, err, ErrNotAFile)

	dangling := filepath.Join(dir, "dangling.otlp")
	require.NoError(t, os.Symlink(filepath.Join(dir, "nothing"), dangling))
	_, err = p.Inspect(dangling)
	assert.ErrorIs(t, err, ErrNotAFile)

	secret := filepath.Join(elsewhere, "secret")
	writeFile(t, secret, 0o600)
	out := filepath.Join(dir, "out.otlp")
	require.NoError(t, os.Symlink(secret, out))
	_, err = p.Inspect(out)
	assert.Contains(t, refusal(t, err), "outside the include directories (follow_symlinks is false)")
	p.FollowSymlinks = true
	c, err := p.Inspect(out)
	require.NoError(t, err)
	resolved, err := filepath.EvalSymlinks(secret)
	require.NoError(t, err)
	assert.Equal(t, resolved, c.Target)
	p.FollowSymlinks = false

	world := filepath.Join(dir, "world.otlp")
	writeFile(t, world, 0o666)
	_, err = p.Inspect(world)
	assert.Equal(t, "world-writable (mode -rw-rw-rw-; reject_world_writable is true)", refusal(t, err))
	p.RejectWorldWritable = false
	_, err = p.Inspect(world)
	assert.NoError(t, err)

	// The owner and mode of a link are those of its target.
	require.NoError(t, os.Chmod(secret, 0o666))
	p.FollowSymlinks = true
	p.RejectWorldWritable = true
	_, err = p.Inspect(out)
	assert.Contains(t, refusal(t, err), "world-writable")
	assert.False(t, errors.Is(err, ErrNotAFile))
}
