package finder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tree creates the files (and their directories) under a new directory.
func tree(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, nil, 0o600))
	}
	return root
}

func TestDoubleStarMatchesAnyDepth(t *testing.T) {
	root := tree(t, "a.otlp", "x/b.otlp", "x/y/c.otlp", "x/y/c.txt", "z/d.otlp")
	require.NoError(t, os.Mkdir(filepath.Join(root, "dir.otlp"), 0o755))

	got := FindFiles([]string{filepath.Join(root, "**", "*.otlp")}, nil)
	assert.Equal(t, []string{
		filepath.Join(root, "a.otlp"),
		filepath.Join(root, "x/b.otlp"),
		filepath.Join(root, "x/y/c.otlp"),
		filepath.Join(root, "z/d.otlp"),
	}, got, "** matches zero or more directories; directories are not listed")

	got = FindFiles([]string{filepath.Join(root, "*", "*.otlp")}, nil)
	assert.Equal(t, []string{filepath.Join(root, "x/b.otlp"), filepath.Join(root, "z/d.otlp")}, got,
		"a single * stays within one directory")
}

func TestExcludeAndDuplicates(t *testing.T) {
	root := tree(t, "app.otlp", "test-1.otlp", "sub/test-2.otlp", "sub/app.otlp")
	include := []string{
		filepath.Join(root, "**", "*.otlp"),
		filepath.Join(root, "app.otlp"), // found twice
	}
	got := FindFiles(include, []string{filepath.Join(root, "**", "test-*")})
	assert.Equal(t, []string{filepath.Join(root, "app.otlp"), filepath.Join(root, "sub/app.otlp")}, got)
}

func TestRelativePatternsGiveAbsolutePaths(t *testing.T) {
	root := tree(t, "rel/one.otlp")
	t.Chdir(root)
	got := FindFiles([]string{"rel/*.otlp"}, nil)
	assert.Equal(t, []string{filepath.Join(root, "rel/one.otlp")}, got)
	// An exclude pattern may be written relative too.
	assert.Empty(t, FindFiles([]string{"rel/*.otlp"}, []string{"rel/one.*"}))
	assert.Empty(t, FindFiles([]string{"rel/*.otlp"}, []string{filepath.Join(root, "rel", "*")}))
}

func TestLinksAreListedLinksToDirectoriesAreNot(t *testing.T) {
	root := tree(t, "target.data", "d/x")
	require.NoError(t, os.Symlink(filepath.Join(root, "target.data"), filepath.Join(root, "link.otlp")))
	require.NoError(t, os.Symlink(filepath.Join(root, "d"), filepath.Join(root, "dir.otlp")))
	require.NoError(t, os.Symlink(filepath.Join(root, "missing"), filepath.Join(root, "dangling.otlp")))
	got := FindFiles([]string{filepath.Join(root, "*.otlp")}, nil)
	assert.Equal(t, []string{filepath.Join(root, "dangling.otlp"), filepath.Join(root, "link.otlp")}, got,
		"links are the caller's to judge, except links to directories")
}

func TestUnreadableDirectoryIsSkipped(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	root := tree(t, "ok/a.otlp", "locked/b.otlp")
	locked := filepath.Join(root, "locked")
	require.NoError(t, os.Chmod(locked, 0))
	t.Cleanup(func() { _ = os.Chmod(locked, 0o755) })
	got := FindFiles([]string{filepath.Join(root, "**", "*.otlp")}, nil)
	assert.Equal(t, []string{filepath.Join(root, "ok/a.otlp")}, got)
}

func TestValidate(t *testing.T) {
	for _, ok := range []string{"/run/app/*.otlp", "/run/**/*.otlp", "rel/[ab]?.otlp", "/run/{a,b}/*.otlp"} {
		assert.NoError(t, Validate(ok), ok)
	}
	assert.EqualError(t, Validate(""), "empty glob pattern")
	assert.EqualError(t, Validate("/run/app/["), `invalid glob pattern "/run/app/[": syntax error in pattern`)
	assert.Error(t, Validate(`/run/app/\`))
}

func TestUnderDirectoryOf(t *testing.T) {
	root := tree(t, "a/x.otlp")
	real := filepath.Join(root, "a")
	via := filepath.Join(root, "via")
	require.NoError(t, os.Symlink(real, via))

	flat := []string{filepath.Join(root, "a", "*.otlp")}
	assert.True(t, UnderDirectoryOf(flat, filepath.Join(real, "other.data")))
	assert.False(t, UnderDirectoryOf(flat, filepath.Join(real, "sub", "x")))
	assert.False(t, UnderDirectoryOf(flat, filepath.Join(root, "x")))

	deep := []string{filepath.Join(root, "a", "**", "*.otlp")}
	assert.True(t, UnderDirectoryOf(deep, filepath.Join(real, "x")))
	assert.True(t, UnderDirectoryOf(deep, filepath.Join(real, "sub", "deeper", "x")))
	assert.False(t, UnderDirectoryOf(deep, filepath.Join(root, "x")))

	// The pattern's directory is reached through a link: its target counts.
	linked := []string{filepath.Join(via, "*.otlp")}
	assert.True(t, UnderDirectoryOf(linked, filepath.Join(real, "x")))
}
