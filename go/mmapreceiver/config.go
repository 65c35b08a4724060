package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
	"github.com/otelcol-mmap/mmapreceiver/internal/finder"
)

// Default values of the configuration keys of the receiver itself
// (documented in README.md). The defaults of the keys that configure the
// library's reader (batch sizes, span limits, cardinality, stuck slots) are
// the library's own, read with ffi.DefaultOptions: one source of truth.
const (
	defaultPollInterval       = 15 * time.Millisecond
	defaultFlushTimeout       = 40 * time.Millisecond
	defaultScanInterval       = time.Second
	defaultMaxFiles           = 1024
	defaultCollectionInterval = 60 * time.Second
	defaultRetryInitial       = 10 * time.Millisecond
	defaultRetryMax           = time.Second
	defaultCheckpointInterval = time.Second
)

// Config defines the configuration of the mmap receiver.
type Config struct {
	// Include lists glob patterns (path/filepath.Match syntax plus `**` for
	// any number of directories) of the OTLP-MMAP files to read. Required.
	Include []string `mapstructure:"include"`
	// Exclude lists glob patterns of files to leave alone even though they
	// match Include.
	Exclude []string `mapstructure:"exclude"`
	// PollInterval is how often the library's watcher thread looks at the
	// idle (parked) files for new records: the longest a record written
	// after a silence waits before its file is read. Busy files are read
	// back to back without sleeping.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// FlushTimeout is the longest a record of continuous traffic waits in
	// the ring for its batch to fill: after a partial batch the file is
	// read again when the recent rate would fill a batch, but at most
	// FlushTimeout later (and at least PollInterval; sooner when the ring
	// would get a quarter full). Full batches are read back to back.
	FlushTimeout time.Duration `mapstructure:"flush_timeout"`
	// ScanInterval is how often the Include/Exclude globs are evaluated again
	// to pick up new files and let go of removed ones.
	ScanInterval time.Duration `mapstructure:"scan_interval"`
	// MaxFiles caps the files read at once; further matching files are
	// opened only when others are closed.
	MaxFiles int `mapstructure:"max_files"`

	// AllowedOwners lists the users (numeric uids or user names) whose
	// files are read; a file owned by anyone else is skipped. Empty: any owner.
	AllowedOwners []string `mapstructure:"allowed_owners"`
	// RejectWorldWritable skips files that every local user may write
	// (mode o+w): anyone could have put anything in them. Default true.
	RejectWorldWritable bool `mapstructure:"reject_world_writable"`
	// RejectGroupWritable skips files that their group may write (mode g+w).
	// Default false: a Collector running as another user than the
	// application needs write access (it stores its read position in the
	// file), which a shared group usually gives.
	RejectGroupWritable bool `mapstructure:"reject_group_writable"`
	// FollowSymlinks lets a matching symbolic link point anywhere. Default
	// false: a link is followed only when its target lies in a directory
	// that one of the Include patterns covers.
	FollowSymlinks bool `mapstructure:"follow_symlinks"`

	// StuckSlotTimeout is how long a ring slot that a writer claimed may
	// stay unpublished, while later slots are published, before the reader
	// skips it as abandoned (counted in otelcol_receiver_mmap_abandoned_slots).
	// It matters for writers that may still be alive or that take no
	// liveness lock; the slots of a writer known to be dead are skipped at
	// once.
	StuckSlotTimeout time.Duration `mapstructure:"stuck_slot_timeout"`

	// DeleteAfterDrain removes a file once its writer is gone (its liveness
	// lock was seen held, then released) and everything in it was delivered.
	// Default true: a file is a transport buffer, not a record, and the files
	// of crash-looping applications would otherwise fill their volume.
	DeleteAfterDrain bool `mapstructure:"delete_after_drain"`

	// StorageID names a storage extension (for example file_storage) that
	// keeps each file's reader state across Collector restarts: spans in
	// flight, batches read and not committed, metric aggregates with their
	// start times. Nil: no state is kept.
	StorageID *component.ID `mapstructure:"storage"`
	// CheckpointInterval is how often, with storage, each file's state is
	// stored (when it changed); the span events and measurements read
	// since the last checkpoint stay in the rings meanwhile.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`

	Traces         TracesConfig  `mapstructure:"traces"`
	Logs           LogsConfig    `mapstructure:"logs"`
	Metrics        MetricsConfig `mapstructure:"metrics"`
	RetryOnFailure RetryConfig   `mapstructure:"retry_on_failure"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// TracesConfig holds the settings of the traces ring.
type TracesConfig struct {
	// MaxBatchSize is the largest number of spans in one batch sent on.
	MaxBatchSize int `mapstructure:"max_batch_size"`
	// MaxInFlightSpans bounds the spans that were started but did not end
	// yet; beyond that the oldest are emitted as incomplete spans.
	MaxInFlightSpans int `mapstructure:"max_in_flight_spans"`
	// MaxSpanAge is how long a started span may stay open before it is
	// emitted as an incomplete span.
	MaxSpanAge time.Duration `mapstructure:"max_span_age"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// LogsConfig holds the settings of the logs ring.
type LogsConfig struct {
	// MaxBatchSize is the largest number of log records in one batch.
	MaxBatchSize int `mapstructure:"max_batch_size"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// MetricsConfig holds the settings of the metrics ring.
type MetricsConfig struct {
	// CollectionInterval is how often the aggregated measurements are
	// turned into a metrics batch (and once more at shutdown).
	CollectionInterval time.Duration `mapstructure:"collection_interval"`
	// CardinalityLimit is the most series per metric; further attribute
	// sets are folded into an overflow series.
	CardinalityLimit int `mapstructure:"cardinality_limit"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// RetryConfig sets the backoff used when the next consumer refuses a batch
// with a retryable error.
type RetryConfig struct {
	InitialInterval time.Duration `mapstructure:"initial_interval"`
	MaxInterval     time.Duration `mapstructure:"max_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

func createDefaultConfig() component.Config {
	lib := ffi.DefaultOptions()
	return &Config{
		PollInterval:        defaultPollInterval,
		FlushTimeout:        defaultFlushTimeout,
		ScanInterval:        defaultScanInterval,
		MaxFiles:            defaultMaxFiles,
		RejectWorldWritable: true,
		StuckSlotTimeout:    lib.StuckSlotTimeout,
		DeleteAfterDrain:    true,
		CheckpointInterval:  defaultCheckpointInterval,
		Traces: TracesConfig{
			MaxBatchSize:     int(lib.MaxBatchSpans),
			MaxInFlightSpans: int(lib.MaxInFlightSpans),
			MaxSpanAge:       lib.MaxSpanAge,
		},
		Logs: LogsConfig{MaxBatchSize: int(lib.MaxBatchLogs)},
		Metrics: MetricsConfig{
			CollectionInterval: defaultCollectionInterval,
			CardinalityLimit:   int(lib.MetricCardinalityLimit),
		},
		RetryOnFailure: RetryConfig{
			InitialInterval: defaultRetryInitial,
			MaxInterval:     defaultRetryMax,
		},
	}
}

// Validate checks the configuration; every error names the offending key.
func (cfg *Config) Validate() error {
	var errs []error
	if len(cfg.Include) == 0 {
		errs = append(errs, errors.New("include: at least one glob pattern is required"))
	}
	errs = append(errs, validateGlobs("include", cfg.Include)...)
	errs = append(errs, validateGlobs("exclude", cfg.Exclude)...)
	if _, err := resolveOwners(cfg.AllowedOwners); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs,
		positiveDuration("poll_interval", cfg.PollInterval),
		positiveDuration("flush_timeout", cfg.FlushTimeout),
		positiveDuration("scan_interval", cfg.ScanInterval),
		positiveDuration("stuck_slot_timeout", cfg.StuckSlotTimeout),
		positiveDuration("checkpoint_interval", cfg.CheckpointInterval),
		positiveInt("max_files", cfg.MaxFiles),
		positiveInt("traces::max_batch_size", cfg.Traces.MaxBatchSize),
		positiveInt("traces::max_in_flight_spans", cfg.Traces.MaxInFlightSpans),
		positiveDuration("traces::max_span_age", cfg.Traces.MaxSpanAge),
		positiveInt("logs::max_batch_size", cfg.Logs.MaxBatchSize),
		positiveDuration("metrics::collection_interval", cfg.Metrics.CollectionInterval),
		positiveInt("metrics::cardinality_limit", cfg.Metrics.CardinalityLimit),
		positiveDuration("retry_on_failure::initial_interval", cfg.RetryOnFailure.InitialInterval),
		positiveDuration("retry_on_failure::max_interval", cfg.RetryOnFailure.MaxInterval),
	)
	if cfg.RetryOnFailure.InitialInterval > 0 && cfg.RetryOnFailure.MaxInterval > 0 &&
		cfg.RetryOnFailure.MaxInterval < cfg.RetryOnFailure.InitialInterval {
		errs = append(errs, fmt.Errorf("retry_on_failure::max_interval: %v is shorter than retry_on_failure::initial_interval %v",
			cfg.RetryOnFailure.MaxInterval, cfg.RetryOnFailure.InitialInterval))
	}
	return errors.Join(errs...)
}

func validateGlobs(key string, patterns []string) []error {
	var errs []error
	for i, p := range patterns {
		if err := finder.Validate(p); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
		}
	}
	return errs
}

func positiveDuration(key string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s: must be a positive duration, got %v", key, d)
	}
	return nil
}

func positiveInt(key string, v int) error {
	if v <= 0 {
		return fmt.Errorf("%s: must be a positive number, got %d", key, v)
	}
	return nil
}

// resolveOwners turns allowed_owners into uids; nil means any owner.
func resolveOwners(owners []string) (map[uint32]bool, error) {
	if len(owners) == 0 {
		return nil, nil
	}
	uids := map[uint32]bool{}
	var errs []error
	for i, o := range owners {
		if uid, err := strconv.ParseUint(o, 10, 32); err == nil {
			uids[uint32(uid)] = true
			continue
		}
		if o == "" {
			errs = append(errs, fmt.Errorf("allowed_owners[%d]: empty user", i))
			continue
		}
		u, err := user.Lookup(o)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed_owners[%d]: unknown user %q: %w", i, o, err))
			continue
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed_owners[%d]: user %q has a non-numeric uid %q", i, o, u.Uid))
			continue
		}
		uids[uint32(uid)] = true
	}
	return uids, errors.Join(errs...)
}
