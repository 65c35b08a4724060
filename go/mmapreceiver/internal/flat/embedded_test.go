package flat_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

// An embedded value is wrapped in four length-delimited fields for pdata's
// decoder; around the sizes where a length takes one more varint byte, at
// any of the four levels, the value decodes to what was sent.
func TestEmbeddedValuesOfEverySizeDecode(t *testing.T) {
	var sizes []int
	for _, edge := range []int{1 << 7, 1 << 14} {
		for n := edge - 16; n <= edge+4; n++ {
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		want := strings.Repeat("x", n)
		// AnyValue.string_value (1).
		msg := binary.AppendUvarint([]byte{1<<3 | 2}, uint64(n))
		msg = append(msg, want...)
		batch := logsBatch([]string{"INFO"}, 2, func(l *layout, _ int) {
			l.u8(kindAnyValue)
			l.u32(uint32(len(msg)))
			l.b = append(l.b, msg...)
			l.u32(0) // attributes
		})
		var d flat.Decoder
		ld, err := d.Logs(batch)
		require.NoError(t, err, "size %d", n)
		recs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		require.Equal(t, 2, recs.Len())
		for i := range 2 {
			require.Equal(t, want, recs.At(i).Body().Str(), "size %d", n)
		}
	}
}
