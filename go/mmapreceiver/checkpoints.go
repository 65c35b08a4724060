package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// maxCheckpointBytes bounds a checkpoint read back from storage; a larger
// one is ignored (the library bounds it again by the reader's limits).
const maxCheckpointBytes = 512 << 20

// checkpoints keeps each file's reader state in the storage extension
// named by the storage key, under the file's path.
type checkpoints struct {
	client storage.Client
	logger *zap.Logger
	tel    *telemetry
}

// openCheckpoints gets a client of the storage extension id for receiver.
func openCheckpoints(ctx context.Context, host component.Host, id, receiver component.ID, logger *zap.Logger, tel *telemetry) (*checkpoints, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage: no extension %q in the service's extensions", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage: extension %q is not a storage extension", id)
	}
	client, err := se.GetClient(ctx, component.KindReceiver, receiver, "")
	if err != nil {
		return nil, fmt.Errorf("storage: extension %q: %w", id, err)
	}
	return &checkpoints{client: client, logger: logger, tel: tel}, nil
}

func checkpointKey(path string) string { return "file:" + path }

// markerKey is where the delivery marker of path's reader is kept: what it
// delivered since its last stored checkpoint.
func markerKey(path string) string { return "delivered:" + path }

// restore puts the checkpoint stored for path back into rd, a reader that
// has read nothing yet, and makes rd keep what it reads in the rings until
// a checkpoint covers it. A checkpoint that does not fit this file (corrupt,
// another file or an earlier writer of it, rings moved past it) is ignored
// with one log line, counted and removed.
//
// It says whether rd needs a first checkpoint, of its state as opened,
// before it reads anything (storeFirstCheckpoint): there was none to
// restore (and storage could be read: a checkpoint may be there
// otherwise). The delivery markers stored after each batch count from a
// checkpoint, so that a crash before the next one (checkpoint_interval)
// does not emit again all that was delivered since the file was opened.
func (c *checkpoints) restore(ctx context.Context, path string, rd *ffi.Reader) (needsFirst bool) {
	restored, readable := c.restoreStored(ctx, path, rd)
	return !restored && readable
}

// storeFirstCheckpoint stores the state of a reader that has read nothing
// yet (see restore). Called by the reader's own goroutine, not by the
// scan, so that opening many files does not wait on storage.
func (fr *fileReader) storeFirstCheckpoint() {
	_, err := fr.storeWhileAttached(func() error {
		return fr.deps.checkpoints.save(context.Background(), fr.path, fr.rd)
	})
	if err != nil {
		fr.deps.logger.Warn("Cannot store the first checkpoint of a file; a crash before its next one would emit again what was delivered since its opening",
			zap.String("path", fr.path), zap.Error(err))
	}
}

// restoreStored is restore's reading part: whether a stored checkpoint was
// restored, and whether storage could be read.
func (c *checkpoints) restoreStored(ctx context.Context, path string, rd *ffi.Reader) (restored, readable bool) {
	if err := rd.HoldUntilCheckpoint(true); err != nil {
		c.logger.Warn("Cannot hold the rings of a file until its checkpoints", zap.String("path", path), zap.Error(err))
	}
	key := checkpointKey(path)
	b, err := c.client.Get(ctx, key)
	if err != nil {
		c.logger.Warn("Cannot read the checkpoint of a file from storage; reading it without", zap.String("path", path), zap.Error(err))
		return false, false
	}
	if b == nil {
		return false, true
	}
	if len(b) > maxCheckpointBytes {
		c.ignore(path, fmt.Sprintf("%d bytes, more than %d", len(b), maxCheckpointBytes))
		return false, true
	}
	ok, why, refused, err := rd.Restore(b)
	switch {
	case err != nil:
		c.ignore(path, err.Error())
		return false, true
	case !ok:
		c.ignore(path, why)
		return false, true
	default:
		c.logger.Info("Restored the state of a file from its checkpoint", zap.String("path", path),
			zap.Int("bytes", len(b)), zap.Uint64("refused", refused))
		c.restoreDelivered(ctx, path, rd)
		return true, true
	}
}

// restoreDelivered applies the delivery marker stored after the checkpoint
// just restored: what was delivered since that checkpoint is not emitted
// again. A marker of an earlier checkpoint is left alone (the checkpoint
// covers it).
func (c *checkpoints) restoreDelivered(ctx context.Context, path string, rd *ffi.Reader) {
	b, err := c.client.Get(ctx, markerKey(path))
	if err != nil {
		c.logger.Warn("Cannot read the delivery marker of a file from storage; what was delivered since its checkpoint comes again",
			zap.String("path", path), zap.Error(err))
		return
	}
	if b == nil {
		return
	}
	applied, why, skipped, err := rd.RestoreDelivered(b)
	switch {
	case err != nil:
		c.logger.Warn("Cannot apply the delivery marker of a file", zap.String("path", path), zap.Error(err))
	case !applied:
		c.logger.Debug("Not applying the delivery marker of a file", zap.String("path", path), zap.String("reason", why))
	default:
		c.logger.Debug("Not emitting again what was delivered since the checkpoint", zap.String("path", path),
			zap.Uint64("spans", skipped))
	}
}

// markDelivered stores rd's delivery marker for path after a traces or
// metrics batch was committed: a crash from now on does not emit that
// batch again. fr.mu is held.
func (fr *fileReader) markDelivered(sig ffi.Signal) {
	if sig == ffi.Logs || !fr.keepsCheckpoints() {
		return
	}
	b, err := fr.rd.DeliveryMarker()
	if err == nil {
		_, err = fr.storeWhileAttached(func() error {
			return fr.deps.checkpoints.client.Set(context.Background(), markerKey(fr.path), b)
		})
	}
	if err != nil {
		if !fr.markerWarn {
			fr.deps.logger.Warn("Cannot store the delivery marker of a file; a crash would emit again what was delivered since the checkpoint",
				zap.String("path", fr.path), zap.Error(err))
			fr.markerWarn = true
		}
		return
	}
	fr.markerWarn = false
}

func (c *checkpoints) ignore(path, why string) {
	c.logger.Warn("Ignoring the checkpoint of a file", zap.String("path", path), zap.String("reason", why))
	c.tel.checkpointIgnored()
	c.forget(context.Background(), path)
}

// save stores rd's state for path, then lets rd give what it covers back
// to the writers.
func (c *checkpoints) save(ctx context.Context, path string, rd *ffi.Reader) error {
	b, err := rd.Checkpoint()
	if err != nil {
		return err
	}
	if err := c.client.Set(ctx, checkpointKey(path), b); err != nil {
		return err
	}
	return rd.CheckpointStored()
}

// forget removes what is stored for path (its reader ended for good).
func (c *checkpoints) forget(ctx context.Context, path string) {
	for _, key := range []string{checkpointKey(path), markerKey(path)} {
		if err := c.client.Delete(ctx, key); err != nil {
			c.logger.Debug("Cannot remove a checkpoint from storage", zap.String("path", path), zap.Error(err))
		}
	}
}

func (c *checkpoints) close(ctx context.Context) error { return c.client.Close(ctx) }
