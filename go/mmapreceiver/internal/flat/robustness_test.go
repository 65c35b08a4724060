package flat_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/ffitest"
	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

// firstBatches returns the first flat traces and logs batch of a small file
// (copied: the library's memory is reused).
func firstBatches(t testing.TB) [2][]byte {
	path := filepath.Join(t.TempDir(), "f.otlp")
	w, err := ffitest.CreateWriter(path, 256, 512)
	require.NoError(t, err)
	defer w.Close()
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		require.NoError(t, w.Span([16]byte{1, byte(i)}, [8]byte{2, byte(i)}, "op", "k", "v", now, now.Add(time.Second)))
		require.NoError(t, w.Log("body", "k", "v", now))
	}
	opts := ffi.DefaultOptions()
	opts.Flat = true
	r, err := ffitest.OpenReader(path, opts)
	require.NoError(t, err)
	defer r.Close()
	var out [2][]byte
	for _, sig := range []ffi.Signal{ffi.Traces, ffi.Logs} {
		b, ok, err := r.Poll(sig, now)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, byte(0), b.Data[4], "flat")
		out[sig] = append([]byte(nil), b.Data...)
	}
	return out
}

func decode(sig ffi.Signal, data []byte) error {
	var d flat.Decoder
	if sig == ffi.Traces {
		_, err := d.Traces(data)
		return err
	}
	_, err := d.Logs(data)
	return err
}

// Every prefix of a batch, and a batch with bytes changed, decodes or
// fails with an error: never a panic, never an allocation a count in the
// batch asks for beyond what the batch holds.
func TestDamagedBatchesFailCleanly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for sig, batch := range firstBatches(t) {
		require.NoError(t, decode(ffi.Signal(sig), batch))
		for cut := range len(batch) {
			require.Error(t, decode(ffi.Signal(sig), batch[:cut]), "prefix of %d", cut)
		}
		for range 20_000 {
			b := append([]byte(nil), batch...)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(len(b))
				switch rng.IntN(3) {
				case 0:
					b[i] = byte(rng.Uint32())
				case 1:
					b[i] ^= 0x80
				default:
					// A count or length made huge.
					if i+4 <= len(b) {
						binary.LittleEndian.PutUint32(b[i:], 0x7fff_ffff)
					}
				}
			}
			_ = decode(ffi.Signal(sig), b)
		}
	}
}

// The table header: a batch whose new entries start past what Go holds is
// refused; a batch delivered again adds nothing; a new epoch starts the
// table over. After a batch that did not decode, only one that starts a
// table (base 0) is read, as the library sends once told to start over.
func TestTableHeader(t *testing.T) {
	batch := func(epoch, base uint32, strs ...string) []byte {
		b := []byte("OMF1\x00")
		for _, v := range []uint32{epoch, base, uint32(len(strs))} {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		for _, s := range strs {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
		// An empty logs body: no resources.
		return binary.LittleEndian.AppendUint32(b, 0)
	}
	var d flat.Decoder
	_, err := d.Logs(batch(0, 0, "a", "b"))
	require.NoError(t, err)
	require.Equal(t, 2, d.Strings())
	_, err = d.Logs(batch(0, 0, "a", "b"))
	require.NoError(t, err)
	require.Equal(t, 2, d.Strings(), "delivered again")
	_, err = d.Logs(batch(0, 3, "d"))
	require.ErrorContains(t, err, "out of step")
	require.Equal(t, 2, d.Strings())
	_, err = d.Logs(batch(0, 2, "c"))
	require.ErrorContains(t, err, "out of step", "the table may be lost")
	_, err = d.Logs(batch(0, 0, "c"))
	require.NoError(t, err)
	require.Equal(t, 1, d.Strings(), "started over")
	_, err = d.Logs(batch(0, 1, "d"))
	require.NoError(t, err)
	require.Equal(t, 2, d.Strings())
	_, err = d.Logs(batch(1, 0, "x"))
	require.NoError(t, err)
	require.Equal(t, 1, d.Strings())
	require.Equal(t, uint32(1), d.Epoch())
	_, err = d.Logs([]byte("OMF2\x00"))
	require.ErrorContains(t, err, "magic")
	_, err = d.Logs(append(batch(1, 1), 0))
	require.ErrorContains(t, err, "left after")
}

func FuzzDecoder(f *testing.F) {
	for _, b := range firstBatches(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = decode(ffi.Traces, data)
		_ = decode(ffi.Logs, data)
	})
}

// A list of more than 32 attributes comes as an encoded KeyValueList, which
// pdata decodes: every entry, in order, a repeated key kept.
func TestLongAttributeListsDecodeWithPdata(t *testing.T) {
	kv := func(k string, v int64) []byte {
		val := binary.AppendUvarint([]byte{3 << 3}, uint64(v)) // AnyValue.int_value
		b := binary.AppendUvarint([]byte{1<<3 | 2}, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(append(b, 2<<3|2), uint64(len(val)))
		return append(b, val...)
	}
	var list []byte
	want := pcommon.NewMap()
	for i := range 40 {
		k := fmt.Sprintf("k%d", i%39) // k0 twice
		e := kv(k, int64(i))
		list = binary.AppendUvarint(append(list, 1<<3|2), uint64(len(e)))
		list = append(list, e...)
		if i < 39 {
			want.PutInt(k, int64(i))
		}
	}
	// A logs batch: no new strings, one resource whose attributes are the list.
	b := []byte("OMF1\x00")
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 1<<31|uint32(len(list)))
	b = append(b, list...)
	b = binary.LittleEndian.AppendUint32(b, 0) // dropped
	b = binary.LittleEndian.AppendUint32(b, 0) // scopes
	var d flat.Decoder
	ld, err := d.Logs(b)
	require.NoError(t, err)
	got := ld.ResourceLogs().At(0).Resource().Attributes()
	require.Equal(t, 40, got.Len(), "the repeated key is kept")
	i := 0
	for k, v := range got.All() {
		require.Equal(t, fmt.Sprintf("k%d", i%39), k)
		require.Equal(t, int64(i), v.Int())
		i++
	}
	// Damaged: a length past the end, and bytes that are not a list.
	_, err = d.Logs(b[:len(b)-20])
	require.Error(t, err)
	bad := append([]byte(nil), b...)
	bad[len(b)-8-len(list)] = 0xff
	_, err = d.Logs(bad)
	require.Error(t, err)
}

// A flat batch that does not decode, dropped and reported to the library
// (as the receiver does): the library starts its table over, and the
// batches after it decode, though they use strings the dropped one brought.
func TestAfterABatchThatDoesNotDecodeTheNextOnesDo(t *testing.T) {
	for _, report := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "f.otlp")
		w, err := ffitest.CreateWriter(path, 256, 512)
		require.NoError(t, err)
		defer w.Close()
		opts := ffi.DefaultOptions()
		opts.Flat = true
		r, err := ffitest.OpenReader(path, opts)
		require.NoError(t, err)
		defer r.Close()
		now := time.Unix(1_700_000_000, 0)
		var d flat.Decoder
		for round := range 3 {
			for i := range 3 {
				require.NoError(t, w.Log(fmt.Sprint("body ", round, i), "key", "value", now))
			}
			b, ok, err := r.Poll(ffi.Logs, now)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, byte(0), b.Data[4], "flat")
			data := append([]byte(nil), b.Data...)
			if round == 0 {
				// The first batch brings "key" (and the scope's strings);
				// a length in its table made wrong.
				require.NotZero(t, binary.LittleEndian.Uint32(data[13:]), "new entries")
				binary.LittleEndian.PutUint32(data[17:], 0x7fff_ffff)
			}
			ld, derr := d.Logs(data)
			switch {
			case round == 0:
				require.Error(t, derr)
				if report {
					require.NoError(t, r.StartFlatOver(ffi.Logs))
				}
			case report:
				require.NoError(t, derr, "round %d", round)
				require.Equal(t, 3, ld.LogRecordCount())
				rec := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(2)
				require.Equal(t, fmt.Sprint("body ", round, 2), rec.Body().Str())
				v, ok := rec.Attributes().Get("key")
				require.True(t, ok)
				require.Equal(t, "value", v.Str())
			default:
				require.Error(t, derr, "round %d: without the report the table stays out of step", round)
			}
			require.NoError(t, r.Commit(ffi.Logs, b.Token))
		}
	}
}

// Told to start over while the batch is pending, the library lays it out
// again under the new table: polled again (re-offered), it decodes.
func TestAPendingBatchIsLaidOutAgainAfterStartOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.otlp")
	w, err := ffitest.CreateWriter(path, 256, 512)
	require.NoError(t, err)
	defer w.Close()
	opts := ffi.DefaultOptions()
	opts.Flat = true
	r, err := ffitest.OpenReader(path, opts)
	require.NoError(t, err)
	defer r.Close()
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		require.NoError(t, w.Log(fmt.Sprint("body ", i), "key", "value", now))
	}
	b, ok, err := r.Poll(ffi.Logs, now)
	require.NoError(t, err)
	require.True(t, ok)
	data := append([]byte(nil), b.Data...)
	binary.LittleEndian.PutUint32(data[17:], 0x7fff_ffff)
	var d flat.Decoder
	_, err = d.Logs(data)
	require.Error(t, err)
	require.NoError(t, r.StartFlatOver(ffi.Logs))
	again, ok, err := r.Poll(ffi.Logs, now)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, b.Token, again.Token, "the same batch")
	require.Equal(t, uint32(1), binary.LittleEndian.Uint32(again.Data[5:]), "under a new epoch")
	ld, err := d.Logs(again.Data)
	require.NoError(t, err)
	require.Equal(t, 3, ld.LogRecordCount())
	require.NoError(t, r.Commit(ffi.Logs, again.Token))
}
