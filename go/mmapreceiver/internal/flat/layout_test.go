package flat

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// The layout's constants are defined in Rust (the collector crate's `flat`
// module) and reach Go through the library's C header; this package's
// copies must be the header's values.
func TestLayoutConstantsAreTheLibrarys(t *testing.T) {
	h := ffi.FlatLayout
	require.Equal(t, h.Magic, binary.LittleEndian.Uint32([]byte(magic)), "magic")
	require.Equal(t, []uint8{h.ModeFlat, h.ModeOTLP}, []uint8{modeFlat, modeOTLP}, "modes")
	require.Equal(t, h.Inline, uint32(inline), "inline")
	require.Equal(t,
		[]uint8{h.KindEmpty, h.KindStr, h.KindBool, h.KindInt, h.KindDouble, h.KindBytes, h.KindAnyValue},
		[]uint8{kindEmpty, kindStr, kindBool, kindInt, kindDouble, kindBytes, kindAnyValue}, "value kinds")
	require.Equal(t,
		[]uint32{h.ResourceMinBytes, h.ScopeMinBytes, h.AttributeMinBytes, h.SpanMinBytes, h.LinkMinBytes, h.LogMinBytes},
		[]uint32{resourceSize, scopeSize, attrSize, spanSize, linkSize, logSize}, "least sizes")
}
