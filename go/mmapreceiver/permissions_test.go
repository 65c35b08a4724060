package mmapreceiver

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// writeFile creates an OTLP-MMAP file with one span "span <id>" in it.
func writeFile(t *testing.T, path string) string {
	t.Helper()
	tw := newTestWriter(t, path)
	id := nextID(filepath.Base(path))
	require.NoError(t, tw.span(id))
	return id
}

// runAndCollect runs the receiver until the spans of want arrived, then a
// few more scans, and returns the ids seen and the log observer.
func runAndCollect(t *testing.T, cfg *Config, want int) (map[string]bool, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	set := nopSettings()
	set.Logger = zap.New(core)
	ts := new(consumertest.TracesSink)
	stop := startReceiver(t, cfg, set, pipelines{traces: ts})
	require.Eventually(t, func() bool { return ts.SpanCount() >= want }, waitFor, time.Millisecond)
	time.Sleep(5 * cfg.ScanInterval) // a refused file would show up by now
	require.NoError(t, stop())
	c := newCollected()
	c.addTraces(ts.AllTraces())
	seen := map[string]bool{}
	for id := range c.spans {
		seen[id] = true
	}
	return seen, logs
}

func refusals(logs *observer.ObservedLogs, path string) []string {
	var out []string
	for _, e := range logs.FilterMessage("Not reading OTLP-MMAP file").FilterField(zap.String("path", path)).All() {
		out = append(out, e.ContextMap()["reason"].(string))
	}
	return out
}

// modeFiles creates good.otlp (mode as created), world.otlp (0666) and
// group.otlp (0660) in a new directory.
func modeFiles(t *testing.T) (dir string, ids map[string]string) {
	dir = t.TempDir()
	ids = map[string]string{}
	for name, mode := range map[string]os.FileMode{"good": 0, "world": 0o666, "group": 0o660} {
		path := filepath.Join(dir, name+".otlp")
		ids[name] = writeFile(t, path)
		if mode != 0 {
			require.NoError(t, os.Chmod(path, mode))
		}
	}
	return dir, ids
}

func TestWorldWritableFilesAreRefusedByDefault(t *testing.T) {
	dir, ids := modeFiles(t)
	cfg := testConfig(dir)
	assert.True(t, cfg.RejectWorldWritable)
	assert.False(t, cfg.RejectGroupWritable)
	seen, logs := runAndCollect(t, cfg, 2)
	assert.True(t, seen[ids["good"]])
	assert.True(t, seen[ids["group"]], "group-writable files are read by default")
	assert.False(t, seen[ids["world"]], "a world-writable file must not be read")
	r := refusals(logs, filepath.Join(dir, "world.otlp"))
	require.Len(t, r, 1, "logged once")
	assert.Contains(t, r[0], "world-writable")

	// reject_group_writable, with reject_world_writable switched off.
	dir, ids = modeFiles(t)
	cfg = testConfig(dir)
	cfg.RejectWorldWritable = false
	cfg.RejectGroupWritable = true
	seen, logs = runAndCollect(t, cfg, 1)
	assert.True(t, seen[ids["good"]])
	assert.False(t, seen[ids["group"]])
	assert.False(t, seen[ids["world"]], "0666 is group-writable too")
	r = refusals(logs, filepath.Join(dir, "group.otlp"))
	require.Len(t, r, 1)
	assert.Contains(t, r[0], "group-writable")

	// Both off: everything is read.
	dir, ids = modeFiles(t)
	cfg = testConfig(dir)
	cfg.RejectWorldWritable = false
	seen, _ = runAndCollect(t, cfg, 3)
	assert.Len(t, seen, 3)
}

func TestAllowedOwners(t *testing.T) {
	me, err := user.Current()
	require.NoError(t, err)
	for _, owners := range [][]string{{me.Uid}, {me.Username}, {"4000000", me.Uid}} {
		dir := t.TempDir()
		id := writeFile(t, filepath.Join(dir, "mine.otlp"))
		cfg := testConfig(dir)
		cfg.AllowedOwners = owners
		require.NoError(t, cfg.Validate())
		seen, _ := runAndCollect(t, cfg, 1)
		assert.True(t, seen[id], "allowed_owners %v", owners)
	}

	other := "65534"
	if me.Uid == other {
		other = "0"
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "mine.otlp")
	writeFile(t, path)
	cfg := testConfig(dir)
	cfg.AllowedOwners = []string{other}
	core, logs := observer.New(zapcore.DebugLevel)
	set := nopSettings()
	set.Logger = zap.New(core)
	ts := new(consumertest.TracesSink)
	stop := startReceiver(t, cfg, set, pipelines{traces: ts})
	require.Eventually(t, func() bool { return len(refusals(logs, path)) == 1 }, waitFor, time.Millisecond)
	time.Sleep(5 * cfg.ScanInterval)
	require.NoError(t, stop())
	assert.Equal(t, 0, ts.SpanCount())
	r := refusals(logs, path)
	require.Len(t, r, 1, "logged once")
	assert.Contains(t, r[0], fmt.Sprintf("owned by uid %s", me.Uid))

	cfg = testConfig(dir)
	cfg.AllowedOwners = []string{"no-such-user-otlp-mmap", ""}
	err = cfg.Validate()
	assert.ErrorContains(t, err, `allowed_owners[0]: unknown user "no-such-user-otlp-mmap"`)
	assert.ErrorContains(t, err, `allowed_owners[1]: empty user`)
}

// linkFiles: dir/link.otlp -> another directory's secret.otlp, and
// dir/inside.otlp -> dir/real.data.
func linkFiles(t *testing.T) (dir, link, out, in string) {
	dir = t.TempDir()
	target := filepath.Join(t.TempDir(), "secret.otlp")
	out = writeFile(t, target)
	link = filepath.Join(dir, "link.otlp")
	require.NoError(t, os.Symlink(target, link))
	inTarget := filepath.Join(dir, "real.data")
	in = writeFile(t, inTarget)
	require.NoError(t, os.Symlink(inTarget, filepath.Join(dir, "inside.otlp")))
	return dir, link, out, in
}

func TestSymlinksOutsideIncludeDirectories(t *testing.T) {
	dir, link, out, in := linkFiles(t)
	cfg := testConfig(dir)
	assert.False(t, cfg.FollowSymlinks)
	seen, logs := runAndCollect(t, cfg, 1)
	assert.True(t, seen[in], "a link within the include directory is followed")
	assert.False(t, seen[out], "a link out of the include directories must not be followed")
	r := refusals(logs, link)
	require.Len(t, r, 1)
	assert.Contains(t, r[0], "outside the include directories")

	dir, _, out, in = linkFiles(t)
	cfg = testConfig(dir)
	cfg.FollowSymlinks = true
	seen, _ = runAndCollect(t, cfg, 2)
	assert.True(t, seen[in])
	assert.True(t, seen[out])
}
