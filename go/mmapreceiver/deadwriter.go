package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"time"

	"go.uber.org/zap"
)

// unlockedWriterGrace: with delete_after_drain, the writer of a file whose
// liveness lock was never seen held (it died while no Collector ran) is
// presumed gone once the file's start time is this old and nothing was
// written to the file nor read from it for this long. Our writers take the
// lock before their file appears at its path, so a minute is far longer
// than any start-up; a writer that takes no lock and writes nothing for a
// minute is presumed gone too (README: "Files of writers that are gone").
var unlockedWriterGrace = time.Minute

// presumeWriterGone looks whether the writer of a file whose lock was never
// seen held is presumed gone; if so the file is drained, then removed (run).
// fr.mu is held.
func (fr *fileReader) presumeWriterGone() {
	gone, err := fr.rd.WriterPresumedGone(time.Now(), unlockedWriterGrace)
	if err != nil || !gone || fr.writerGone.Swap(true) {
		return
	}
	fr.deps.logger.Info("The writer of a file never took its liveness lock while this Collector watched and the file is idle: presumed gone (delete_after_drain)",
		zap.String("path", fr.path), zap.Duration("idle", unlockedWriterGrace))
	fr.requestDrain()
}
