package mmapreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-mmap/mmapreceiver/internal/metadata"
)

func TestCreateDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, 15*time.Millisecond, cfg.PollInterval)
	assert.Equal(t, 40*time.Millisecond, cfg.FlushTimeout)
	assert.Equal(t, time.Second, cfg.ScanInterval)
	assert.Equal(t, 1024, cfg.MaxFiles)
	assert.Equal(t, 1024, cfg.Traces.MaxBatchSize)
	assert.Equal(t, 100000, cfg.Traces.MaxInFlightSpans)
	assert.Equal(t, 10*time.Minute, cfg.Traces.MaxSpanAge)
	assert.Equal(t, 1024, cfg.Logs.MaxBatchSize)
	assert.Equal(t, 60*time.Second, cfg.Metrics.CollectionInterval)
	assert.Equal(t, 2000, cfg.Metrics.CardinalityLimit)
	assert.Equal(t, 10*time.Millisecond, cfg.RetryOnFailure.InitialInterval)
	assert.Equal(t, time.Second, cfg.RetryOnFailure.MaxInterval)
	assert.Empty(t, cfg.AllowedOwners)
	assert.True(t, cfg.RejectWorldWritable)
	assert.False(t, cfg.RejectGroupWritable)
	assert.False(t, cfg.FollowSymlinks)
	assert.Equal(t, 2*time.Second, cfg.StuckSlotTimeout)
	assert.True(t, cfg.DeleteAfterDrain)
	assert.Equal(t, time.Second, cfg.CheckpointInterval)
	// The defaults lack the required include list.
	require.ErrorContains(t, confmap.Validate(cfg), "include")
}

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

var fileStorage = component.MustNewIDWithName("file_storage", "mmap")

func TestLoadValidConfig(t *testing.T) {
	cfg, err := loadConfig(t, "defaults")
	require.NoError(t, err)
	want := createDefaultConfig().(*Config)
	want.Include = []string{"/var/run/otlp-mmap/*.otlp"}
	assert.Equal(t, want, cfg)

	cfg, err = loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, &Config{
		Include:             []string{"/var/run/otlp-mmap/*.otlp", "/tmp/app-*.otlp"},
		Exclude:             []string{"/tmp/app-test-*.otlp"},
		PollInterval:        2 * time.Millisecond,
		FlushTimeout:        20 * time.Millisecond,
		ScanInterval:        250 * time.Millisecond,
		MaxFiles:            64,
		AllowedOwners:       []string{"0", "1000"},
		RejectWorldWritable: false,
		RejectGroupWritable: true,
		FollowSymlinks:      true,
		StuckSlotTimeout:    5 * time.Second,
		DeleteAfterDrain:    false,
		StorageID:           &fileStorage,
		CheckpointInterval:  200 * time.Millisecond,
		Traces: TracesConfig{
			MaxBatchSize:     512,
			MaxInFlightSpans: 5000,
			MaxSpanAge:       time.Minute,
		},
		Logs: LogsConfig{MaxBatchSize: 256},
		Metrics: MetricsConfig{
			CollectionInterval: 10 * time.Second,
			CardinalityLimit:   100,
		},
		RetryOnFailure: RetryConfig{
			InitialInterval: 5 * time.Millisecond,
			MaxInterval:     500 * time.Millisecond,
		},
	}, cfg)
}

func TestLoadInvalidConfig(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{"no_include", "include: at least one glob pattern is required"},
		{"empty_include", "include: at least one glob pattern is required"},
		{"bad_include_glob", "include[0]: invalid glob pattern"},
		{"empty_include_glob", "include[0]: empty glob pattern"},
		{"bad_exclude_glob", "exclude[0]: invalid glob pattern"},
		{"zero_poll_interval", "poll_interval: must be a positive duration"},
		{"zero_flush_timeout", "flush_timeout: must be a positive duration"},
		{"negative_scan_interval", "scan_interval: must be a positive duration"},
		{"zero_max_files", "max_files: must be a positive number"},
		{"zero_traces_max_batch_size", "traces::max_batch_size: must be a positive number"},
		{"negative_max_in_flight_spans", "traces::max_in_flight_spans: must be a positive number"},
		{"zero_max_span_age", "traces::max_span_age: must be a positive duration"},
		{"zero_logs_max_batch_size", "logs::max_batch_size: must be a positive number"},
		{"zero_collection_interval", "metrics::collection_interval: must be a positive duration"},
		{"negative_cardinality_limit", "metrics::cardinality_limit: must be a positive number"},
		{"zero_initial_interval", "retry_on_failure::initial_interval: must be a positive duration"},
		{"zero_max_interval", "retry_on_failure::max_interval: must be a positive duration"},
		{"max_below_initial_interval", "retry_on_failure::max_interval: 1s is shorter than"},
		{"unknown_allowed_owner", `allowed_owners[0]: unknown user "no-such-user-otlp-mmap"`},
		{"unknown_key", "pol_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(t, tt.name)
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestValidateReportsEveryBadKey(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Include = []string{"["}
	cfg.PollInterval = 0
	cfg.Logs.MaxBatchSize = -1
	err := cfg.Validate()
	require.Error(t, err)
	for _, key := range []string{"include[0]", "poll_interval", "logs::max_batch_size"} {
		assert.ErrorContains(t, err, key)
	}
}
