package flat // import "github.com/otelcol-mmap/mmapreceiver/internal/flat"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Least bytes a span and a link take.
const (
	spanSize = 16 + 8 + 8 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 4
	linkSize = 16 + 8 + 4 + 4 + 4 + 4
)

// Traces turns a traces batch into pdata. data is read, not kept: it may
// be library memory that is reused after the call.
func (d *Decoder) Traces(data []byte) (ptrace.Traces, error) {
	c, otlp, err := d.begin(data)
	if err != nil {
		return ptrace.Traces{}, err
	}
	if otlp != nil {
		return (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(otlp)
	}
	td := ptrace.NewTraces()
	rss := td.ResourceSpans()
	nr := c.count(resourceSize)
	rss.EnsureCapacity(nr)
	for range nr {
		rs := rss.AppendEmpty()
		d.resource(&c, rs.Resource())
		ns := c.count(scopeSize)
		sss := rs.ScopeSpans()
		sss.EnsureCapacity(ns)
		for range ns {
			ss := sss.AppendEmpty()
			d.scope(&c, ss.Scope())
			n := c.count(spanSize)
			spans := ss.Spans()
			spans.EnsureCapacity(n)
			for range n {
				d.span(&c, spans.AppendEmpty())
				if c.err != nil {
					return ptrace.Traces{}, c.err
				}
			}
		}
	}
	if err := d.end(&c); err != nil {
		return ptrace.Traces{}, err
	}
	return td, nil
}

func (d *Decoder) span(c *cursor, s ptrace.Span) {
	s.SetTraceID(c.traceID())
	s.SetSpanID(c.spanID())
	if ts := d.str(c); ts != "" {
		s.TraceState().FromRaw(ts)
	}
	s.SetParentSpanID(c.spanID())
	s.SetName(d.str(c))
	s.SetKind(ptrace.SpanKind(int32(c.u32())))
	s.SetStartTimestamp(pcommon.Timestamp(c.u64()))
	s.SetEndTimestamp(pcommon.Timestamp(c.u64()))
	d.attrs(c, s.Attributes())
	s.SetDroppedAttributesCount(c.u32())
	if n := c.count(linkSize); n > 0 {
		links := s.Links()
		links.EnsureCapacity(n)
		for range n {
			d.link(c, links.AppendEmpty())
			if c.err != nil {
				return
			}
		}
	}
	s.SetDroppedLinksCount(c.u32())
	st := s.Status()
	st.SetMessage(d.str(c))
	st.SetCode(ptrace.StatusCode(int32(c.u32())))
	s.SetFlags(c.u32())
}

func (d *Decoder) link(c *cursor, l ptrace.SpanLink) {
	l.SetTraceID(c.traceID())
	l.SetSpanID(c.spanID())
	if ts := d.str(c); ts != "" {
		l.TraceState().FromRaw(ts)
	}
	d.attrs(c, l.Attributes())
	l.SetDroppedAttributesCount(c.u32())
	l.SetFlags(c.u32())
}
