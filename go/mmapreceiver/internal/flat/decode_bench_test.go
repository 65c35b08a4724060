package flat_test

// The decoder on shapes the Handoff benchmarks (internal/ffi) do not have:
// log bodies that never repeat (inline strings) and structured bodies with
// long attribute lists (values pdata's own decoder reads). Each batch is
// built here, by the layout, and decoded twice before the clock starts, so
// the string table holds its entries, as in a steady state.
//
//	cd go/mmapreceiver && go test -run '^$' -bench . -benchmem ./internal/flat/

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

const benchRecords = 1024

// layout appends the words of a flat batch.
type layout struct{ b []byte }

func (l *layout) u8(v byte)    { l.b = append(l.b, v) }
func (l *layout) u32(v uint32) { l.b = binary.LittleEndian.AppendUint32(l.b, v) }
func (l *layout) u64(v uint64) { l.b = binary.LittleEndian.AppendUint64(l.b, v) }

// inline appends a string that follows in the batch.
func (l *layout) inline(s string) {
	l.u32(1<<31 | uint32(len(s)))
	l.b = append(l.b, s...)
}

// logsBatch lays out a logs batch: the table's entries, one resource and
// one scope (no attributes), and n records, each laid out by record.
func logsBatch(table []string, n int, record func(l *layout, i int)) []byte {
	l := &layout{b: []byte("OMF1\x00")}
	l.u32(0) // epoch
	l.u32(0) // base
	l.u32(uint32(len(table)))
	for _, s := range table {
		l.u32(uint32(len(s)))
		l.b = append(l.b, s...)
	}
	l.u32(1) // resources
	l.u32(0) // attributes
	l.u32(0) // dropped
	l.u32(1) // scopes
	l.inline("bench")
	l.inline("1.0")
	l.u32(0) // attributes
	l.u32(0) // dropped
	l.u32(uint32(n))
	for i := range n {
		l.u64(1_700_000_000_000_000_000 + uint64(i)) // timestamp
		l.u32(9)                                     // severity
		l.u32(0)                                     // severity text: table entry 0
		record(l, i)
		l.u32(0)                                 // dropped
		l.u32(1)                                 // flags
		l.b = append(l.b, make([]byte, 16+8)...) // trace and span id
		l.u64(1_700_000_000_000_000_000)         // observed
		l.inline("")                             // event name
	}
	return l.b
}

// Value kinds of the layout.
const (
	kindStr      = 1
	kindBool     = 2
	kindInt      = 3
	kindAnyValue = 6
)

func benchLogs(b *testing.B, batch []byte, n int) {
	var d flat.Decoder
	for range 2 {
		ld, err := d.Logs(batch)
		if err != nil || ld.LogRecordCount() != n {
			b.Fatalf("%v: %d records", err, ld.LogRecordCount())
		}
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Logs(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// A body of its own per record (inline) and three attributes from the table.
func BenchmarkDecodeUniqueBodies(b *testing.B) {
	table := []string{"INFO", "http.route", "/items/{id}", "http.response.status_code", "cache.hit"}
	batch := logsBatch(table, benchRecords, func(l *layout, i int) {
		l.u8(kindStr)
		l.inline(fmt.Sprintf("GET /items/%d served in %d ms by worker %d", 100_000+i, i%97, i%8))
		l.u32(3) // attributes
		l.u32(1)
		l.u8(kindStr)
		l.u32(2)
		l.u32(3)
		l.u8(kindInt)
		l.u64(200)
		l.u32(4)
		l.u8(kindBool)
		l.u8(1)
	})
	benchLogs(b, batch, benchRecords)
}

// A kvlist body of four entries and a list of 40 attributes (past the
// layout's 32: an encoded KeyValueList), both decoded by pdata.
func BenchmarkDecodeStructuredBodies(b *testing.B) {
	field := func(num uint64, inner []byte) []byte {
		out := binary.AppendUvarint(nil, num<<3|2)
		out = binary.AppendUvarint(out, uint64(len(inner)))
		return append(out, inner...)
	}
	strValue := func(s string) []byte { return field(1, []byte(s)) }                            // AnyValue.string_value
	intValue := func(v int64) []byte { return binary.AppendUvarint([]byte{3 << 3}, uint64(v)) } // AnyValue.int_value
	kv := func(k string, v []byte) []byte { return append(field(1, []byte(k)), field(2, v)...) }
	var body []byte
	for i, k := range []string{"user", "action", "items", "elapsed_ms"} {
		v := strValue(fmt.Sprint("value-", i))
		if i >= 2 {
			v = intValue(int64(i * 10))
		}
		body = append(body, field(1, kv(k, v))...) // KeyValueList.values
	}
	body = field(6, body) // AnyValue.kvlist_value
	var list []byte
	for i := range 40 {
		list = append(list, field(1, kv(fmt.Sprint("attribute.", i), intValue(int64(i))))...)
	}
	const n = 256
	batch := logsBatch([]string{"INFO"}, n, func(l *layout, _ int) {
		l.u8(kindAnyValue)
		l.u32(uint32(len(body)))
		l.b = append(l.b, body...)
		l.u32(1<<31 | uint32(len(list)))
		l.b = append(l.b, list...)
	})
	benchLogs(b, batch, n)
}

// A batch that brings 1024 table entries (a body each), decoded by a new
// Decoder each time: the cost of the table's growth, as in the first
// batches of a file.
func BenchmarkDecodeTableEntries(b *testing.B) {
	table := []string{"INFO"}
	for i := range benchRecords {
		table = append(table, fmt.Sprintf("GET /items/%d served", 100_000+i))
	}
	batch := logsBatch(table, benchRecords, func(l *layout, i int) {
		l.u8(kindStr)
		l.u32(uint32(1 + i))
		l.u32(0) // attributes
	})
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		var d flat.Decoder
		if _, err := d.Logs(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
}
