package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/receiverhelper"

	"github.com/otelcol-mmap/mmapreceiver/internal/flat"
)

// signalConsumer is one signal's pipeline as a file reader sees it.
type signalConsumer interface {
	// unmarshal copies a batch (library memory, valid only until the next
	// call on the file) into pdata: traces and logs in the flat layout,
	// with the string table of the file's signal in dec; metrics as an
	// OTLP protobuf export request.
	unmarshal(dec *flat.Decoder, data []byte) (decodedBatch, error)
}

// decodedBatch is one unmarshalled batch, ready for the next consumer.
type decodedBatch struct {
	// items is the number of spans, log records or metric data points.
	items int
	// consume hands the batch to the next consumer, reported through
	// obsreport, and returns the consumer's answer.
	consume func(ctx context.Context) error
}

// pdataConsumer implements signalConsumer for one pdata type.
type pdataConsumer[T any] struct {
	decode  func(*flat.Decoder, []byte) (T, error)
	count   func(T) int
	next    func(context.Context, T) error
	startOp func(context.Context) context.Context
	endOp   func(ctx context.Context, format string, numItems int, err error)
}

func (c *pdataConsumer[T]) unmarshal(dec *flat.Decoder, data []byte) (decodedBatch, error) {
	v, err := c.decode(dec, data)
	if err != nil {
		return decodedBatch{}, err
	}
	n := c.count(v)
	return decodedBatch{items: n, consume: func(ctx context.Context) error {
		opCtx := c.startOp(ctx)
		err := c.next(opCtx, v)
		c.endOp(opCtx, format, n, err)
		return err
	}}, nil
}

func newTracesConsumer(next consumer.Traces, obsrep *receiverhelper.ObsReport) signalConsumer {
	return &pdataConsumer[ptrace.Traces]{
		decode:  (*flat.Decoder).Traces,
		count:   ptrace.Traces.SpanCount,
		next:    next.ConsumeTraces,
		startOp: obsrep.StartTracesOp,
		endOp:   obsrep.EndTracesOp,
	}
}

func newLogsConsumer(next consumer.Logs, obsrep *receiverhelper.ObsReport) signalConsumer {
	return &pdataConsumer[plog.Logs]{
		decode:  (*flat.Decoder).Logs,
		count:   plog.Logs.LogRecordCount,
		next:    next.ConsumeLogs,
		startOp: obsrep.StartLogsOp,
		endOp:   obsrep.EndLogsOp,
	}
}

func newMetricsConsumer(next consumer.Metrics, obsrep *receiverhelper.ObsReport) signalConsumer {
	return &pdataConsumer[pmetric.Metrics]{
		decode: func(_ *flat.Decoder, data []byte) (pmetric.Metrics, error) {
			return (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(data)
		},
		count:   pmetric.Metrics.DataPointCount,
		next:    next.ConsumeMetrics,
		startOp: obsrep.StartMetricsOp,
		endOp:   obsrep.EndMetricsOp,
	}
}
