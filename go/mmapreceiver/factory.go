package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-mmap/mmapreceiver/internal/metadata"
)

// NewFactory returns the factory of the mmap receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithTraces(createTraces, metadata.TracesStability),
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
		receiver.WithLogs(createLogs, metadata.LogsStability),
	)
}

// receivers holds the instance shared by the traces, metrics and logs
// receivers of one component ID.
var receivers = newSharedMap()

func createTraces(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	s, err := receivers.getOrCreate(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	s.r.setTraces(next)
	return s, nil
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	s, err := receivers.getOrCreate(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	s.r.setMetrics(next)
	return s, nil
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	s, err := receivers.getOrCreate(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	s.r.setLogs(next)
	return s, nil
}
