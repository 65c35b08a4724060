/* CONTRACT DRAFT - will be replaced by the cbindgen-generated header with the same API. */
#ifndef OTLP_MMAP_H
#define OTLP_MMAP_H
#include <stdint.h>
#include <stddef.h>

/* Status codes returned by every function. */
#define OM_OK 0
#define OM_EMPTY 1            /* poll: nothing to deliver now */
#define OM_BUSY 2             /* collect: the previous metrics batch is not committed yet; measurements keep aggregating */
#define OM_ERR_NULL 10        /* a required pointer argument was NULL */
#define OM_ERR_ARGUMENT 11    /* bad argument (unknown signal, zero option, non-UTF-8 path, ...) */
#define OM_ERR_OPEN 12        /* the file cannot be opened: missing, too short, wrong version, corrupt header */
#define OM_ERR_LOCKED 13      /* another reader (collector) already reads this file */
#define OM_ERR_TOKEN 14       /* commit with a token that is not the pending batch's (double commit, stale token) */
#define OM_ERR_IO 15          /* I/O error while reading */
#define OM_ERR_FULL 16        /* writer: ring full or record larger than a slot; the record was dropped and counted */
#define OM_ERR_PANIC 99       /* internal bug caught at the boundary; the handle must be closed */

/* Signals */
#define OM_SIGNAL_TRACES 0
#define OM_SIGNAL_LOGS 1
#define OM_SIGNAL_METRICS 2

typedef struct OmReader OmReader;
typedef struct OmWriter OmWriter;

/* Caller-allocated error out-parameter; message is NUL-terminated UTF-8, truncated to fit. */
typedef struct OmError {
  int32_t code;
  char message[512];
} OmError;

typedef struct OmReaderOptions {
  uint64_t max_in_flight_spans;     /* default 100000 */
  uint64_t max_span_age_nanos;      /* default 10 minutes */
  uint64_t max_batch_spans;         /* default 1024 */
  uint64_t max_batch_logs;          /* default 1024 */
  uint64_t metric_cardinality_limit;/* default 2000 (series per metric) */
} OmReaderOptions;

/* One export request. data/len: OTLP protobuf ExportTraceServiceRequest,
   ExportLogsServiceRequest or ExportMetricsServiceRequest. The bytes are owned by
   the reader and stay valid until the next poll/commit of the same signal or close. */
typedef struct OmBatch {
  const uint8_t *data;
  size_t len;
  uint64_t token;
  uint64_t items; /* spans, log records or metric data points in the batch */
} OmBatch;

typedef struct OmStats {
  uint64_t ring_capacity[3];     /* slots per ring, indexed by OM_SIGNAL_* */
  uint64_t ring_unread[3];       /* published-or-claimed slots not yet released by the reader */
  uint64_t records_read[3];      /* records decoded */
  uint64_t corrupt_records[3];   /* slots skipped because they did not decode */
  uint64_t incomplete_spans;     /* spans emitted as incomplete (never ended) */
  uint64_t in_flight_spans;      /* spans started and not yet ended */
  uint64_t orphan_span_events;   /* span events for a span never seen starting */
  uint64_t bad_refs;             /* dictionary refs that could not be resolved */
  uint64_t metric_overflows;     /* measurements folded into the overflow series */
  uint64_t writer_restarts;      /* times the writer started over */
  int32_t writer_alive;          /* 1 alive, 0 gone (lock released), -1 unknown */
} OmStats;

void om_reader_options_default(OmReaderOptions *out);
int32_t om_reader_open(const char *path, const OmReaderOptions *options, OmReader **out, OmError *err);
/* Reads more of the signal's ring (bounded work) and returns the pending batch in *out (OM_OK) or OM_EMPTY.
   The same batch is returned again until committed. */
int32_t om_reader_poll(OmReader *reader, int32_t signal, uint64_t now_unix_nano, OmBatch *out, OmError *err);
int32_t om_reader_commit(OmReader *reader, int32_t signal, uint64_t token, OmError *err);
/* Snapshots the metric aggregates into a batch that the next OM_SIGNAL_METRICS poll returns. */
int32_t om_reader_collect_metrics(OmReader *reader, uint64_t now_unix_nano, OmError *err);
/* Gives up on every in-flight span: they come out of the next traces polls as incomplete spans. */
int32_t om_reader_abandon_spans(OmReader *reader, uint64_t now_unix_nano, OmError *err);
int32_t om_reader_stats(OmReader *reader, OmStats *out, OmError *err);
/* Frees the reader; every OmBatch it returned becomes invalid. NULL is ignored. */
int32_t om_reader_close(OmReader *reader);

/* Minimal writer (for tests and C programs). */
int32_t om_writer_create(const char *path, uint32_t ring_slots, uint32_t slot_size, OmWriter **out, OmError *err);
/* A completed span (start+end) with one string attribute. */
int32_t om_writer_span(OmWriter *w, const uint8_t *trace_id16, const uint8_t *span_id8, const char *name,
                       const char *attr_key, const char *attr_value, uint64_t start_unix_nano, uint64_t end_unix_nano, OmError *err);
int32_t om_writer_log(OmWriter *w, const char *body, const char *attr_key, const char *attr_value, uint64_t time_unix_nano, OmError *err);
/* One measurement of a monotonic cumulative int sum named metric_name. */
int32_t om_writer_counter_add(OmWriter *w, const char *metric_name, const char *attr_key, const char *attr_value, int64_t value, uint64_t time_unix_nano, OmError *err);
int32_t om_writer_close(OmWriter *w);
#endif
