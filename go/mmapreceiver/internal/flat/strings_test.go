package flat

import (
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// logsBatch is a flat logs batch of epoch 0 that starts the table with
// strs and has no resources.
func logsBatch(strs []string) []byte {
	b := []byte("OMF1\x00")
	for _, v := range []uint32{0, 0, uint32(len(strs))} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	for _, s := range strs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return binary.LittleEndian.AppendUint32(b, 0)
}

// entries returns n strings of size bytes, each of its own letter.
func entries(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Repeat(string(rune('a'+i)), size)
	}
	return out
}

// A batch's new entries share one copy up to sharedEntriesMax bytes (each
// entry right after the one before and its 4-byte length); above it each
// entry is a copy of its own, so that a string kept from the table keeps
// no more than itself alive.
func TestNewTableEntriesShareOneCopyOnlyUpToABound(t *testing.T) {
	for _, tc := range []struct {
		size   int
		shared bool
	}{
		{size: 1 << 10, shared: true},
		{size: sharedEntriesMax / 8, shared: false},
		{size: 16 << 10, shared: false},
	} {
		strs := entries(8, tc.size)
		require.Equal(t, tc.shared, 8*(4+tc.size) <= sharedEntriesMax)
		var d Decoder
		_, err := d.Logs(logsBatch(strs))
		require.NoError(t, err)
		require.Equal(t, strs, d.strings)
		for i := 1; i < len(strs); i++ {
			prev := uintptr(unsafe.Pointer(unsafe.StringData(d.strings[i-1])))
			next := uintptr(unsafe.Pointer(unsafe.StringData(d.strings[i])))
			require.Equal(t, tc.shared, next == prev+uintptr(tc.size)+4, "entry %d of %d bytes", i, tc.size)
		}
		// Allocations: one copy, or one per entry, beside what does not
		// depend on the entries' sizes.
		allocs := func(size int) float64 {
			batch := logsBatch(entries(8, size))
			return testing.AllocsPerRun(20, func() {
				var d Decoder
				_, _ = d.Logs(batch)
			})
		}
		extra := 0.0
		if !tc.shared {
			extra = 7
		}
		require.Equal(t, allocs(8)+extra, allocs(tc.size), "entries of %d bytes", tc.size)
	}
}
