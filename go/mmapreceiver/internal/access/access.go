// Package access decides which matching files the receiver may read, and
// opens them so that what is read is what was checked.
//
// Discovery (Inspect) looks at the path: it resolves a symbolic link and
// applies the link rule, and notes the device and inode of the file found.
// Open then opens that file without following a link in its last component,
// and makes every ownership and mode decision again on the open descriptor
// (fstat), after checking that it is still the same device and inode. A path
// swapped for a link, or for another file, between the two steps is refused,
// never read.
package access // import "github.com/otelcol-mmap/mmapreceiver/internal/access"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/otelcol-mmap/mmapreceiver/internal/finder"
)

// Policy holds the receiver's access settings.
type Policy struct {
	// Include lists the include patterns: a link whose target lies in a
	// directory they cover is followed even when FollowSymlinks is false.
	Include []string
	// AllowedOwners lists the uids whose files may be read; nil: any owner.
	AllowedOwners map[uint32]bool
	// RejectWorldWritable refuses files with mode o+w.
	RejectWorldWritable bool
	// RejectGroupWritable refuses files with mode g+w.
	RejectGroupWritable bool
	// FollowSymlinks follows a link wherever it points.
	FollowSymlinks bool
}

// FileID identifies a file independently of its path.
type FileID struct {
	Dev, Ino uint64
}

// Candidate is a file found by Inspect, to be opened by Open.
type Candidate struct {
	// Path is the path that the include patterns matched.
	Path string
	// Target is the file to open: Path, or the file a link at Path resolves to.
	Target string
	// ID is the file that Inspect found at Target.
	ID FileID
}

// RefusedError says why the policy refuses a file. It does not go away by
// retrying (until the file, its mode or the configuration change).
type RefusedError struct {
	Path   string
	Reason string
}

func (e *RefusedError) Error() string { return e.Path + ": " + e.Reason }

// ErrNotAFile is returned for a path that is gone, a dangling link, or
// anything else than a regular file: there is nothing to read there.
var ErrNotAFile = errors.New("not a regular file")

// ErrChanged is returned by Open when the path no longer leads to the file
// that Inspect checked (it was replaced, or swapped for a link). The next
// discovery sees the new state.
var ErrChanged = errors.New("changed since it was checked")

// Inspect looks at the file at path without opening it. It returns
// ErrNotAFile, a *RefusedError, or the candidate to open.
func (p *Policy) Inspect(path string) (Candidate, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return Candidate{}, ErrNotAFile
	}
	target := path
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		resolved, err := filepath.EvalSymlinks(path)
		if err != nil {
			return Candidate{}, ErrNotAFile // dangling or looping
		}
		if !p.FollowSymlinks && !finder.UnderDirectoryOf(p.Include, resolved) {
			return Candidate{}, &RefusedError{Path: path, Reason: fmt.Sprintf(
				"symbolic link to %s, outside the include directories (follow_symlinks is false)", resolved)}
		}
		target = resolved
		// Every component of the resolved path is a real directory or file.
		if err := unix.Lstat(target, &st); err != nil {
			return Candidate{}, ErrNotAFile
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Candidate{}, ErrNotAFile
	}
	if reason := p.refuse(&st); reason != "" {
		return Candidate{}, &RefusedError{Path: path, Reason: reason}
	}
	return Candidate{Path: path, Target: target, ID: idOf(&st)}, nil
}

// openFlags: read-write (the reader stores its position in the file); never
// through a link in the last component; without blocking on a FIFO swapped
// in; not inherited by child processes.
const openFlags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// Open opens the candidate's file and checks the open descriptor: the same
// device and inode as Inspect found, a regular file, and the owner and mode
// the policy allows. The caller closes the returned file. Errors: ErrChanged
// (wrapped), a *RefusedError, or the open's error.
func (p *Policy) Open(c Candidate) (*os.File, error) {
	fd, err := unix.Open(c.Target, openFlags, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s: %w: it is a symbolic link now", c.Path, ErrChanged)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: c.Target, Err: err}
	}
	if err := p.checkOpened(fd, c); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), c.Path), nil
}

func (p *Policy) checkOpened(fd int, c Candidate) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: c.Target, Err: err}
	}
	if idOf(&st) != c.ID {
		return fmt.Errorf("%s: %w: another file is there now", c.Path, ErrChanged)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		// Unreachable for the same inode, unless a file system reuses it.
		return fmt.Errorf("%s: %w: %w", c.Path, ErrChanged, ErrNotAFile)
	}
	if reason := p.refuse(&st); reason != "" {
		return &RefusedError{Path: c.Path, Reason: reason}
	}
	return nil
}

// refuse says why a file with this status must not be read, or "".
func (p *Policy) refuse(st *unix.Stat_t) string {
	perm := os.FileMode(st.Mode & 0o777)
	if p.RejectWorldWritable && perm&0o002 != 0 {
		return fmt.Sprintf("world-writable (mode %v; reject_world_writable is true)", perm)
	}
	if p.RejectGroupWritable && perm&0o020 != 0 {
		return fmt.Sprintf("group-writable (mode %v; reject_group_writable is true)", perm)
	}
	if p.AllowedOwners != nil && !p.AllowedOwners[st.Uid] {
		return fmt.Sprintf("owned by uid %d, not one of allowed_owners", st.Uid)
	}
	return ""
}

func idOf(st *unix.Stat_t) FileID {
	return FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)} //nolint:unconvert // field widths differ per platform
}
