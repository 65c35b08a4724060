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
			if err := keyValueList(b, m); err != nil {
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
			if err := anyValue(b, v); err != nil {
				c.fail(err)
			}
		}
	default:
		c.fail(fmt.Errorf("flat batch: unknown value kind %d", kind))
	}
}

// anyValue decodes an encoded AnyValue message (an array or kvlist) into v
// with pdata's own decoder: wrapped as the body of a log record of an
// export request, whose body is then copied.
func anyValue(msg []byte, v pcommon.Value) error {
	field := func(num uint64, inner []byte) []byte {
		out := binary.AppendUvarint(nil, num<<3|2)
		out = binary.AppendUvarint(out, uint64(len(inner)))
		return append(out, inner...)
	}
	// LogRecord.body (5) in ScopeLogs.log_records (2) in
	// ResourceLogs.scope_logs (2) in ExportLogsServiceRequest.resource_logs (1).
	req := field(1, field(2, field(2, field(5, msg))))
	ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(req)
	if err != nil {
		return fmt.Errorf("flat batch: an embedded value: %w", err)
	}
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().CopyTo(v)
	return nil
}

// keyValueList decodes an encoded KeyValueList into m (empty) with pdata's
// decoder, which keeps its entries as they are, in order.
func keyValueList(list []byte, m pcommon.Map) error {
	// AnyValue.kvlist_value (6).
	msg := binary.AppendUvarint([]byte{6<<3 | 2}, uint64(len(list)))
	msg = append(msg, list...)
	v := pcommon.NewValueEmpty()
	if err := anyValue(msg, v); err != nil {
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
