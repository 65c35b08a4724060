package flat // import "github.com/otelcol-mmap/mmapreceiver/internal/flat"

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// Least bytes an attribute takes: its key word and kind.
const attrSize = 5

// attrs reads an attribute list into m (empty).
func (d *Decoder) attrs(c *cursor, m pcommon.Map) {
	w := c.u32()
	if w&inline != 0 {
		// A long list, as an encoded KeyValueList.
		b := c.bytes(w &^ inline)
		if c.err == nil {
			if err := d.keyValueList(b, m); err != nil {
				c.fail(err)
			}
		}
		return
	}
	if uint64(w)*attrSize > uint64(c.left()) {
		c.fail(fmt.Errorf("flat batch: %d attributes in %d bytes", w, c.left()))
		return
	}
	n := int(w)
	if n == 0 {
		return
	}
	m.EnsureCapacity(n)
	for range n {
		k := d.str(c)
		switch kind := c.u8(); kind {
		case kindStr:
			m.PutStr(k, d.str(c))
		case kindInt:
			m.PutInt(k, int64(c.u64()))
		case kindDouble:
			m.PutDouble(k, math.Float64frombits(c.u64()))
		case kindBool:
			m.PutBool(k, c.u8() != 0)
		default:
			d.value(c, kind, m.PutEmpty(k))
		}
		if c.err != nil {
			return
		}
	}
}

// value reads a value of kind into v (empty).
func (d *Decoder) value(c *cursor, kind byte, v pcommon.Value) {
	switch kind {
	case kindEmpty:
	case kindStr:
		v.SetStr(d.str(c))
	case kindInt:
		v.SetInt(int64(c.u64()))
	case kindDouble:
		v.SetDouble(math.Float64frombits(c.u64()))
	case kindBool:
		v.SetBool(c.u8() != 0)
	case kindBytes:
		v.SetEmptyBytes().FromRaw(bytes.Clone(c.bytes(c.u32())))
	case kindAnyValue:
		b := c.bytes(c.u32())
		if c.err == nil {
			if err := d.anyValue(b, v); err != nil {
				c.fail(err)
			}
		}
	default:
		c.fail(fmt.Errorf("flat batch: unknown value kind %d", kind))
	}
}

// The fields that wrap an embedded value as the body of a log record of an
// export request, outermost first: ExportLogsServiceRequest.resource_logs
// (1), ResourceLogs.scope_logs (2), ScopeLogs.log_records (2),
// LogRecord.body (5); all length-delimited (wire type 2).
var bodyPath = [...]byte{1<<3 | 2, 2<<3 | 2, 2<<3 | 2, 5<<3 | 2}

// embedded decodes an encoded AnyValue message, prefix followed by msg,
// with pdata's own decoder: wrapped, in the decoder's scratch buffer, as
// the body of a log record of an export request. It returns that body
// (pdata copies what it decodes, so the scratch is free again after).
func (d *Decoder) embedded(prefix, msg []byte) (pcommon.Value, error) {
	// lens[i]: the length of what the field bodyPath[i] holds.
	var lens [len(bodyPath)]int
	n := len(prefix) + len(msg)
	for i := len(bodyPath) - 1; i >= 0; i-- {
		lens[i] = n
		n += 1 + uvarintLen(uint64(n))
	}
	req := d.scratch[:0]
	for i, tag := range bodyPath {
		req = binary.AppendUvarint(append(req, tag), uint64(lens[i]))
	}
	req = append(append(req, prefix...), msg...)
	if cap(req) <= maxScratch {
		d.scratch = req[:0]
	}
	ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(req)
	if err != nil {
		return pcommon.Value{}, fmt.Errorf("flat batch: an embedded value: %w", err)
	}
	return ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body(), nil
}

// maxScratch: the largest scratch buffer a Decoder keeps between values.
const maxScratch = 64 << 10

// uvarintLen returns how many bytes x takes as a varint.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// anyValue decodes an encoded AnyValue message (an array or kvlist) into v.
func (d *Decoder) anyValue(msg []byte, v pcommon.Value) error {
	body, err := d.embedded(nil, msg)
	if err != nil {
		return err
	}
	body.MoveTo(v)
	return nil
}

// keyValueList decodes an encoded KeyValueList into m (empty) with pdata's
// decoder, which keeps its entries as they are, in order.
func (d *Decoder) keyValueList(list []byte, m pcommon.Map) error {
	// AnyValue.kvlist_value (6).
	var prefix [1 + binary.MaxVarintLen64]byte
	prefix[0] = 6<<3 | 2
	n := 1 + binary.PutUvarint(prefix[1:], uint64(len(list)))
	v, err := d.embedded(prefix[:n], list)
	if err != nil {
		return err
	}
	if v.Type() != pcommon.ValueTypeMap {
		return fmt.Errorf("flat batch: an attribute list decodes as %v", v.Type())
	}
	v.Map().MoveTo(m)
	return nil
}

// scope reads a scope's name, version, attributes and dropped count.
func (d *Decoder) scope(c *cursor, s pcommon.InstrumentationScope) {
	s.SetName(d.str(c))
	s.SetVersion(d.str(c))
	d.attrs(c, s.Attributes())
	s.SetDroppedAttributesCount(c.u32())
}

// resource reads a resource's attributes and dropped count.
func (d *Decoder) resource(c *cursor, r pcommon.Resource) {
	d.attrs(c, r.Attributes())
	r.SetDroppedAttributesCount(c.u32())
}

// Least bytes a resource group and a scope group take.
const (
	resourceSize = 4 + 4 + 4
	scopeSize    = 4 + 4 + 4 + 4 + 4
)
