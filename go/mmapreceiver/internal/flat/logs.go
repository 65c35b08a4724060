package flat // import "github.com/otelcol-mmap/mmapreceiver/internal/flat"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// Least bytes a log record takes.
const logSize = 8 + 8 + 4 + 4 + 1 + 4 + 4 + 4 + 16 + 8 + 4

// Logs turns a logs batch into pdata. data is read, not kept: it may be
// library memory that is reused after the call.
func (d *Decoder) Logs(data []byte) (plog.Logs, error) {
	c, otlp, err := d.begin(data)
	if err != nil {
		return plog.Logs{}, err
	}
	if otlp != nil {
		return (&plog.ProtoUnmarshaler{}).UnmarshalLogs(otlp)
	}
	ld := plog.NewLogs()
	rls := ld.ResourceLogs()
	nr := c.count(resourceSize)
	rls.EnsureCapacity(nr)
	for range nr {
		rl := rls.AppendEmpty()
		d.resource(&c, rl.Resource())
		ns := c.count(scopeSize)
		sls := rl.ScopeLogs()
		sls.EnsureCapacity(ns)
		for range ns {
			sl := sls.AppendEmpty()
			d.scope(&c, sl.Scope())
			n := c.count(logSize)
			recs := sl.LogRecords()
			recs.EnsureCapacity(n)
			for range n {
				d.record(&c, recs.AppendEmpty())
				if c.err != nil {
					return plog.Logs{}, c.err
				}
			}
		}
	}
	if err := d.end(&c); err != nil {
		return plog.Logs{}, err
	}
	return ld, nil
}

func (d *Decoder) record(c *cursor, r plog.LogRecord) {
	r.SetTimestamp(pcommon.Timestamp(c.u64()))
	r.SetSeverityNumber(plog.SeverityNumber(int32(c.u32())))
	r.SetSeverityText(d.str(c))
	d.value(c, c.u8(), r.Body())
	d.attrs(c, r.Attributes())
	r.SetDroppedAttributesCount(c.u32())
	r.SetFlags(plog.LogRecordFlags(c.u32()))
	r.SetTraceID(c.traceID())
	r.SetSpanID(c.spanID())
	r.SetObservedTimestamp(pcommon.Timestamp(c.u64()))
	r.SetEventName(d.str(c))
}
