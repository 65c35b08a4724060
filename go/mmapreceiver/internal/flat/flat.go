// Package flat turns the library's flat traces and logs batches into pdata
// (the layout is documented in the collector crate's `flat` module,
// rust/otlp-mmap-collector/src/flat.rs). Strings that repeat come as ids
// into a string table that a Decoder keeps for one signal of one file: each
// batch carries the entries added since the previous one, interned once as
// Go strings and shared by every span or record that uses them.
//
// The bytes come from our library, but a Decoder trusts nothing in them:
// every length, count and id is checked, and a batch that does not add up
// is an error, never a panic or an allocation larger than the batch.
package flat // import "github.com/otelcol-mmap/mmapreceiver/internal/flat"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

const (
	magic    = "OMF1"
	modeFlat = 0
	modeOTLP = 1
	// inline marks a str word whose string follows in the batch.
	inline = 1 << 31
)

// Value kinds.
const (
	kindEmpty byte = iota
	kindStr
	kindBool
	kindInt
	kindDouble
	kindBytes
	kindAnyValue
)

// Decoder holds the string table of one signal of one file. The zero
// value is ready for the file's first batch. Not safe for concurrent use.
type Decoder struct {
	strings []string
	epoch   uint32
	// scratch: the buffer an embedded value is decoded from (reused, kept
	// up to maxScratch).
	scratch []byte
	// lost: the last flat batch did not decode, so the table may not be the
	// library's (the library counted that batch's entries as sent). The
	// receiver then has the library start its table over
	// (ffi.Reader.StartFlatOver), and only a batch that starts a table
	// (base 0) is read next, whatever its epoch.
	lost bool
}

// Strings returns how many strings the table holds.
func (d *Decoder) Strings() int { return len(d.strings) }

// Epoch returns the table's generation: the library starts its table over
// (and Go its copy) when it grows past its bounds.
func (d *Decoder) Epoch() uint32 { return d.epoch }

var errShort = errors.New("flat batch: truncated")

// cursor reads a batch; the first failure sticks and every later read
// returns zeros, so callers check err once per item. It moves an offset
// rather than reslicing b: storing an int is not a pointer store, so a read
// takes no GC write barrier (with a cursor behind a pointer, every reslice
// did while the GC was marking).
type cursor struct {
	b   []byte
	off int
	err error
}

// left returns how many bytes are left to read.
func (c *cursor) left() int { return len(c.b) - c.off }

func (c *cursor) fail(err error) {
	if c.err == nil {
		c.err = err
	}
	c.off = len(c.b)
}

func (c *cursor) u8() byte {
	if c.left() < 1 {
		c.fail(errShort)
		return 0
	}
	v := c.b[c.off]
	c.off++
	return v
}

func (c *cursor) u32() uint32 {
	if c.left() < 4 {
		c.fail(errShort)
		return 0
	}
	v := binary.LittleEndian.Uint32(c.b[c.off:])
	c.off += 4
	return v
}

func (c *cursor) u64() uint64 {
	if c.left() < 8 {
		c.fail(errShort)
		return 0
	}
	v := binary.LittleEndian.Uint64(c.b[c.off:])
	c.off += 8
	return v
}

// bytes returns the next n bytes (a view into the batch).
func (c *cursor) bytes(n uint32) []byte {
	if uint64(c.left()) < uint64(n) {
		c.fail(errShort)
		return nil
	}
	end := c.off + int(n)
	v := c.b[c.off:end:end]
	c.off = end
	return v
}

// traceID reads 16 bytes (zeros past the end of the batch).
func (c *cursor) traceID() (id [16]byte) {
	copy(id[:], c.bytes(16))
	return id
}

// spanID reads 8 bytes (zeros past the end of the batch).
func (c *cursor) spanID() (id [8]byte) {
	copy(id[:], c.bytes(8))
	return id
}

// count reads a count of items that take at least size bytes each: a count
// the rest of the batch cannot hold is an error (so that nothing is
// allocated for items that are not there).
func (c *cursor) count(size int) int {
	n := c.u32()
	if uint64(n)*uint64(size) > uint64(c.left()) {
		c.fail(fmt.Errorf("flat batch: %d items of at least %d bytes in %d bytes", n, size, c.left()))
		return 0
	}
	return int(n)
}

// str reads a string: an id into the table or inline bytes (copied).
func (d *Decoder) str(c *cursor) string {
	w := c.u32()
	if w&inline != 0 {
		return string(c.bytes(w &^ inline))
	}
	if uint64(w) >= uint64(len(d.strings)) {
		c.fail(fmt.Errorf("flat batch: string id %d, table holds %d", w, len(d.strings)))
		return ""
	}
	return d.strings[w]
}

// begin reads a batch's header. It returns the cursor on its body, or the
// OTLP export request the batch holds instead (mode 1). The table takes the
// batch's new entries only once all of them were read.
func (d *Decoder) begin(data []byte) (body cursor, otlp []byte, err error) {
	if len(data) < len(magic)+1 || string(data[:len(magic)]) != magic {
		return cursor{}, nil, errors.New("flat batch: bad magic")
	}
	switch data[len(magic)] {
	case modeOTLP:
		return cursor{}, data[len(magic)+1:], nil
	case modeFlat:
	default:
		return cursor{}, nil, fmt.Errorf("flat batch: unknown mode %d", data[len(magic)])
	}
	// Lost until the batch is read to its end.
	lost := d.lost
	d.lost = true
	c := cursor{b: data[len(magic)+1:]}
	epoch, base, n := c.u32(), uint64(c.u32()), c.count(4)
	restart := epoch != d.epoch || lost
	held := uint64(len(d.strings))
	if restart {
		held = 0
	}
	if c.err == nil && base > held {
		c.fail(fmt.Errorf("flat batch: table out of step: entries from %d, %d held", base, held))
	}
	entries := c.b[c.off:]
	for range n {
		c.bytes(c.u32())
	}
	if c.err != nil {
		return cursor{}, nil, c.err
	}
	entries = entries[:len(entries)-c.left()]
	if restart {
		clear(d.strings)
		d.strings, d.epoch = d.strings[:0], epoch
	}
	// Entries before held came with an earlier delivery of this batch. The
	// new ones (entries from held on) are copied in one string, and each is
	// a substring of it: one allocation per batch, not one per entry. Up to
	// sharedEntriesMax bytes only: above, each is copied on its own.
	if uint64(n) > held-base {
		d.strings = slices.Grow(d.strings, int(uint64(n)-(held-base)))
	}
	var copied string
	from := 0 // where copied starts in entries
	apart := false
	e := cursor{b: entries}
	for i := range uint64(n) {
		at := e.off
		size := int(e.u32())
		e.bytes(uint32(size))
		if base+i < held {
			continue
		}
		if base+i == held {
			apart = len(entries)-at > sharedEntriesMax
			if !apart {
				copied, from = string(entries[at:]), at
			}
		}
		if apart {
			d.strings = append(d.strings, string(entries[e.off-size:e.off]))
		} else {
			d.strings = append(d.strings, copied[e.off-from-size:e.off-from])
		}
	}
	return c, nil, nil
}

// sharedEntriesMax bounds the bytes of a batch's new table entries copied
// in one string. A string decoded from the table (a pdata value, which an
// exporter's queue may keep for long) keeps the whole string it is part of
// alive, even after the table started over: at most this much for entries
// that share one, only the entry itself for an entry copied on its own.
const sharedEntriesMax = 64 << 10

// end checks that the body was read to its end: then the batch decoded.
func (d *Decoder) end(c *cursor) error {
	if c.err != nil {
		return c.err
	}
	if c.left() != 0 {
		return fmt.Errorf("flat batch: %d bytes left after the body", c.left())
	}
	d.lost = false
	return nil
}
