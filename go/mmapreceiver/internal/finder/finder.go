// Package finder lists the files that the include and exclude glob patterns
// select. Patterns use the doublestar syntax: path/filepath.Match plus `**`,
// which matches any number of directories.
package finder // import "github.com/otelcol-mmap/mmapreceiver/internal/finder"

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/bmatcuk/doublestar/v4"
)

// Validate checks that pattern is a non-empty, well-formed glob.
func Validate(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("empty glob pattern")
	}
	if !doublestar.ValidatePathPattern(pattern) {
		return fmt.Errorf("invalid glob pattern %q: %w", pattern, doublestar.ErrBadPattern)
	}
	return nil
}

// FindFiles returns the absolute, cleaned paths of the files that match one
// of include and none of exclude, sorted and without duplicates. An exclude
// pattern is matched against the path as the include pattern found it and
// against its absolute form. Directories, and symbolic links to directories,
// are not listed; other links are (dangling ones included): what a link may
// point to is the caller's decision. Directories that cannot be read are
// skipped.
func FindFiles(include, exclude []string) []string {
	var out []string
	for _, pattern := range include {
		// Without WithFailOnIOErrors an unreadable directory is skipped and
		// the rest of the tree is still searched.
		matches, err := doublestar.FilepathGlob(pattern, doublestar.WithFilesOnly())
		if err != nil {
			continue // a bad pattern: refused by Validate at startup
		}
		for _, m := range matches {
			abs, err := filepath.Abs(m)
			if err != nil {
				abs = filepath.Clean(m)
			}
			if excluded(exclude, m) || excluded(exclude, abs) {
				continue
			}
			out = append(out, abs)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func excluded(exclude []string, path string) bool {
	for _, pattern := range exclude {
		if ok, _ := doublestar.PathMatch(pattern, path); ok {
			return true
		}
	}
	return false
}

// UnderDirectoryOf reports whether the directory that holds path is matched
// by the directory part of one of patterns (made absolute), taken as written
// and, when that directory is itself reached through a symbolic link, with
// the link resolved. A pattern "/run/app/**/*.otlp" covers /run/app and
// every directory below it.
func UnderDirectoryOf(patterns []string, path string) bool {
	dir := filepath.Dir(path)
	for _, pattern := range patterns {
		abs, err := filepath.Abs(pattern)
		if err != nil {
			continue
		}
		pdir := filepath.Dir(abs)
		if ok, _ := doublestar.PathMatch(pdir, dir); ok {
			return true
		}
		if real, err := filepath.EvalSymlinks(pdir); err == nil && real != pdir {
			if ok, _ := doublestar.PathMatch(real, dir); ok {
				return true
			}
		}
	}
	return false
}
