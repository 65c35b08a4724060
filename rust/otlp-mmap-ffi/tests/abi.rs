//! The C ABI used as C would use it: bad pointers and handles give codes, a
//! long open/poll/commit/close loop does not leak.

use std::ffi::CString;
use std::ptr;

use otlp_mmap_ffi::*;

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

#[allow(unsafe_code)]
fn writer(path: &CString) -> *mut OmWriter {
    let mut w = ptr::null_mut();
    let mut err = OmError::default();
    // SAFETY: valid pointers for the call.
    let rc = unsafe { om_writer_create(path.as_ptr(), 256, 512, &mut w, &mut err) };
    assert_eq!(rc, OM_OK, "{}", err.message());
    w
}

#[allow(unsafe_code)]
fn open(path: &CString) -> *mut OmReader {
    let mut r = ptr::null_mut();
    let mut err = OmError::default();
    // SAFETY: valid pointers for the call; NULL options take the defaults.
    let rc = unsafe { om_reader_open(path.as_ptr(), ptr::null(), &mut r, &mut err) };
    assert_eq!(rc, OM_OK, "{}", err.message());
    r
}

#[test]
#[allow(unsafe_code)]
fn null_and_bad_handles_give_codes() {
    let mut err = OmError::default();
    let mut batch = OmBatch::default();
    // SAFETY: every pointer is NULL, dangling-by-design (checked by the registry) or valid.
    unsafe {
        assert_eq!(
            om_reader_poll(ptr::null_mut(), OM_SIGNAL_TRACES, 0, &mut batch, &mut err),
            OM_ERR_HANDLE
        );
        assert_eq!(err.code, OM_ERR_HANDLE);
        assert!(!err.message().is_empty());
        assert_eq!(
            om_reader_open(ptr::null(), ptr::null(), ptr::null_mut(), &mut err),
            OM_ERR_NULL
        );
        let bogus = 0x1000 as *mut OmReader;
        assert_eq!(
            om_reader_commit(bogus, OM_SIGNAL_LOGS, 1, ptr::null_mut()),
            OM_ERR_HANDLE
        );
        assert_eq!(om_reader_close(bogus), OM_ERR_HANDLE);
        assert_eq!(om_reader_close(ptr::null_mut()), OM_ERR_HANDLE);
        let missing = CString::new("/nonexistent/dir/x.otlp").unwrap();
        let mut r = ptr::null_mut();
        assert_eq!(
            om_reader_open(missing.as_ptr(), ptr::null(), &mut r, &mut err),
            OM_ERR_OPEN
        );
        assert!(
            err.message().contains("/nonexistent/dir/x.otlp"),
            "{}",
            err.message()
        );
    }
}

#[test]
#[allow(unsafe_code)]
fn wrong_signal_token_type_and_double_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let r = open(&path);
    let mut err = OmError::default();
    let mut batch = OmBatch::default();
    // SAFETY: handles from this library; other pointers valid.
    unsafe {
        assert_eq!(
            om_reader_poll(r, 7, 0, &mut batch, &mut err),
            OM_ERR_ARGUMENT
        );
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 0, ptr::null_mut(), &mut err),
            OM_ERR_NULL
        );
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 0, &mut batch, &mut err),
            OM_EMPTY
        );
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_TRACES, 42, &mut err),
            OM_ERR_TOKEN
        );
        // A writer handle is not a reader handle.
        assert_eq!(om_reader_close(w.cast()), OM_ERR_HANDLE);
        // A second reader of the same file is refused.
        let mut r2 = ptr::null_mut();
        assert_eq!(
            om_reader_open(path.as_ptr(), ptr::null(), &mut r2, &mut err),
            OM_ERR_LOCKED
        );
        assert_eq!(om_reader_close(r), OM_OK);
        assert_eq!(om_reader_close(r), OM_ERR_HANDLE);
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 0, &mut batch, &mut err),
            OM_ERR_HANDLE
        );
        assert_eq!(om_writer_close(w), OM_OK);
        assert_eq!(om_writer_close(w), OM_ERR_HANDLE);
    }
}

#[test]
#[allow(unsafe_code)]
fn all_signals_round_trip_and_batches_stay_until_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let mut err = OmError::default();
    let name = CString::new("op").unwrap();
    let key = CString::new("id").unwrap();
    // SAFETY: handles from this library; other pointers valid.
    unsafe {
        for i in 0..10u8 {
            let v = CString::new(i.to_string()).unwrap();
            let tid = [i + 1; 16];
            let sid = [i + 1; 8];
            assert_eq!(
                om_writer_span(
                    w,
                    tid.as_ptr(),
                    sid.as_ptr(),
                    name.as_ptr(),
                    key.as_ptr(),
                    v.as_ptr(),
                    1,
                    2,
                    &mut err
                ),
                OM_OK
            );
            assert_eq!(
                om_writer_log(w, name.as_ptr(), key.as_ptr(), v.as_ptr(), 3, &mut err),
                OM_OK
            );
            assert_eq!(
                om_writer_counter_add(w, name.as_ptr(), key.as_ptr(), v.as_ptr(), 5, 4, &mut err),
                OM_OK
            );
        }
        let r = open(&path);
        let mut batch = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 10, &mut batch, &mut err),
            OM_OK
        );
        assert_eq!(batch.items, 10);
        let mut again = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 10, &mut again, &mut err),
            OM_OK
        );
        assert_eq!(again.token, batch.token, "re-offered until committed");
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_TRACES, batch.token, &mut err),
            OM_OK
        );
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 10, &mut batch, &mut err),
            OM_EMPTY
        );

        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_LOGS, 10, &mut batch, &mut err),
            OM_OK
        );
        assert_eq!(batch.items, 10);
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_LOGS, batch.token, &mut err),
            OM_OK
        );

        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_METRICS, 10, &mut batch, &mut err),
            OM_EMPTY
        );
        assert_eq!(om_reader_collect_metrics(r, 20, &mut err), OM_OK);
        assert_eq!(om_reader_collect_metrics(r, 20, &mut err), OM_BUSY);
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_METRICS, 10, &mut batch, &mut err),
            OM_OK
        );
        assert_eq!(batch.items, 10, "one series per attribute value");
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_METRICS, batch.token, &mut err),
            OM_OK
        );

        let mut stats = OmStats::default();
        assert_eq!(om_reader_stats(r, &mut stats, &mut err), OM_OK);
        assert_eq!(stats.records_read, [20, 10, 10]);
        assert_eq!(stats.ring_capacity, [256, 256, 256]);
        assert_eq!(stats.writer_alive, 1);
        assert_eq!(om_reader_close(r), OM_OK);
        assert_eq!(om_writer_close(w), OM_OK);
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
#[allow(unsafe_code)]
fn open_poll_commit_close_loop_does_not_leak() {
    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let mut err = OmError::default();
    let body = CString::new("x".repeat(200)).unwrap();
    let cycle = |n: usize| {
        for _ in 0..n {
            // SAFETY: handles from this library; other pointers valid.
            unsafe {
                for _ in 0..20 {
                    om_writer_log(
                        w,
                        body.as_ptr(),
                        ptr::null(),
                        ptr::null(),
                        1,
                        ptr::null_mut(),
                    );
                }
                let mut r = ptr::null_mut();
                assert_eq!(
                    om_reader_open(path.as_ptr(), ptr::null(), &mut r, ptr::null_mut()),
                    OM_OK
                );
                let mut b = OmBatch::default();
                while om_reader_poll(r, OM_SIGNAL_LOGS, 0, &mut b, ptr::null_mut()) == OM_OK {
                    om_reader_commit(r, OM_SIGNAL_LOGS, b.token, ptr::null_mut());
                }
                assert_eq!(om_reader_close(r), OM_OK);
            }
        }
    };
    cycle(200);
    let before = rss_kib();
    cycle(2000);
    let grown = rss_kib().saturating_sub(before);
    // 2000 cycles that each allocate and free well over 10 KiB: a leak of even
    // one batch per cycle would add tens of MiB.
    assert!(
        grown < 4096,
        "RSS grew by {grown} KiB over 2000 open/poll/commit/close cycles"
    );
    // SAFETY: a handle from this library.
    assert_eq!(unsafe { om_writer_close(w) }, OM_OK);
    let _ = &mut err;
}

#[test]
#[allow(unsafe_code)]
fn open_fd_reads_through_its_own_duplicate() {
    use std::os::fd::AsRawFd;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let cp = cpath(&path);
    let w = writer(&cp);
    let mut err = OmError::default();
    let body = c"hello";
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: handles from this library; the fd is open for each call; other
    // pointers valid or NULL.
    unsafe {
        assert_eq!(
            om_writer_log(w, body.as_ptr(), ptr::null(), ptr::null(), 1, &mut err),
            OM_OK
        );
        let mut r = ptr::null_mut();
        assert_eq!(
            om_reader_open_fd(file.as_raw_fd(), cp.as_ptr(), ptr::null(), &mut r, &mut err),
            OM_OK,
            "{}",
            err.message()
        );
        // The caller closes its descriptor: the reader has its own.
        drop(file);
        let mut batch = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_LOGS, 2, &mut batch, &mut err),
            OM_OK
        );
        assert_eq!(batch.items, 1);
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_LOGS, batch.token, &mut err),
            OM_OK
        );

        // A second reader through another descriptor of the same file is locked out.
        let again = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut r2 = ptr::null_mut();
        assert_eq!(
            om_reader_open_fd(
                again.as_raw_fd(),
                cp.as_ptr(),
                ptr::null(),
                &mut r2,
                &mut err
            ),
            OM_ERR_LOCKED
        );
        assert!(r2.is_null());
        assert_eq!(om_reader_close(r), OM_OK);
        // Closing the reader released the lock: the same descriptor opens now.
        assert_eq!(
            om_reader_open_fd(
                again.as_raw_fd(),
                cp.as_ptr(),
                ptr::null(),
                &mut r2,
                &mut err
            ),
            OM_OK,
            "{}",
            err.message()
        );
        assert_eq!(om_reader_close(r2), OM_OK);

        // Bad arguments give codes.
        assert_eq!(
            om_reader_open_fd(-1, cp.as_ptr(), ptr::null(), &mut r2, &mut err),
            OM_ERR_ARGUMENT
        );
        assert_eq!(
            om_reader_open_fd(
                again.as_raw_fd(),
                ptr::null(),
                ptr::null(),
                &mut r2,
                &mut err
            ),
            OM_ERR_NULL
        );
        assert_eq!(
            om_reader_open_fd(
                again.as_raw_fd(),
                cp.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                &mut err
            ),
            OM_ERR_NULL
        );
        // Not an OTLP-MMAP file.
        let junk_path = dir.path().join("junk");
        std::fs::write(&junk_path, b"junk").unwrap();
        let junk = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&junk_path)
            .unwrap();
        assert_eq!(
            om_reader_open_fd(
                junk.as_raw_fd(),
                cp.as_ptr(),
                ptr::null(),
                &mut r2,
                &mut err
            ),
            OM_ERR_OPEN
        );
        assert!(err.message().contains("a.otlp"), "{}", err.message());
        assert_eq!(om_writer_close(w), OM_OK);
    }
}

/// The bounds of issue 12 cross the ABI: the option defaults, a zero field
/// taking its default, `max_mapped_bytes` refusing a longer file with a
/// message naming it, and the new counters copied into `OmStats`.
#[test]
#[allow(unsafe_code)]
fn bounds_and_drop_counters_cross_the_abi() {
    use otlp_mmap_core::proto::{self, span_event::Event};
    use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bounds.otlp");
    let path = cpath(&file);
    let w = MmapWriter::create(
        &file,
        &FileConfig {
            dictionary_max_size: 8 << 20,
            ..FileConfig::default()
        },
    )
    .unwrap();
    // A zero slot, a record over max_record_bytes, a duplicate StartSpan.
    w.try_write_with(RingKind::Events, 0, |_| 0).unwrap();
    let big = w
        .intern_message(&proto::AnyValue {
            value: Some(proto::any_value::Value::StringValue("x".repeat(2 << 20))),
        })
        .unwrap();
    let body = proto::AnyValue {
        value: Some(proto::any_value::Value::ValueRef(big)),
    };
    w.try_write(
        RingKind::Events,
        &proto::Event {
            body: Some(body),
            ..Default::default()
        },
    )
    .unwrap();
    let start = proto::SpanEvent {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        scope_ref: 0,
        event: Some(Event::Start(Default::default())),
    };
    w.try_write(RingKind::Spans, &start).unwrap();
    w.try_write(RingKind::Spans, &start).unwrap();

    let mut err = OmError::default();
    let mut o = OmReaderOptions::default();
    let mut r = ptr::null_mut();
    // SAFETY: valid pointers for each call; `r` comes from this library.
    unsafe {
        om_reader_options_default(&mut o);
        assert_eq!(o.max_mapped_bytes, 256 << 20);
        assert_eq!(o.max_record_bytes, 1 << 20);
        assert_eq!((o.max_span_attributes, o.max_span_links), (128, 128));
        assert!(o.dictionary_cache_max_entries > 0 && o.dictionary_cache_max_bytes > 0);
        assert!(o.max_batch_bytes > 0 && o.max_in_flight_span_bytes > 0 && o.max_metric_bytes > 0);

        let small = OmReaderOptions {
            max_mapped_bytes: 4096,
            ..o
        };
        assert_eq!(
            om_reader_open(path.as_ptr(), &small, &mut r, &mut err),
            OM_ERR_OPEN
        );
        assert!(
            err.message().contains("max_mapped_bytes"),
            "{}",
            err.message()
        );

        // Zero fields take the defaults.
        let zeros = OmReaderOptions::default();
        assert_eq!(
            om_reader_open(path.as_ptr(), &zeros, &mut r, &mut err),
            OM_OK
        );
        let mut b = OmBatch::default();
        for signal in [OM_SIGNAL_LOGS, OM_SIGNAL_TRACES] {
            assert_eq!(om_reader_poll(r, signal, 1, &mut b, &mut err), OM_EMPTY);
        }
        let mut stats = OmStats::default();
        assert_eq!(om_reader_stats(r, &mut stats, &mut err), OM_OK);
        assert_eq!(stats.corrupt_records[OM_SIGNAL_LOGS as usize], 1);
        assert_eq!(stats.oversized_records[OM_SIGNAL_LOGS as usize], 1);
        assert_eq!(stats.duplicate_span_starts, 1);
        assert_eq!(stats.in_flight_spans, 1);
        assert_eq!(om_reader_close(r), OM_OK);
    }
}

#[test]
#[allow(unsafe_code)]
fn watcher_wakes_a_parked_reader_when_records_arrive_or_it_is_due() {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let r = open(&path);
    let (mut wake, notify) = std::io::pipe().unwrap();
    let mut err = OmError::default();
    let mut watcher = ptr::null_mut();
    let name = CString::new("op").unwrap();
    let logs = 1 << OM_SIGNAL_LOGS;
    let never = u64::MAX;
    let token = |wake: &mut std::io::PipeReader| {
        let mut b = [0u8; 8];
        wake.read_exact(&mut b).unwrap();
        u64::from_ne_bytes(b)
    };
    // SAFETY: handles from this library; other pointers valid.
    unsafe {
        assert_eq!(
            om_watcher_start(1_000_000, notify.as_raw_fd(), &mut watcher, &mut err),
            OM_OK,
            "{}",
            err.message()
        );
        drop(notify); // the library keeps its own duplicate

        // Nothing written: still parked after rounds of the watcher.
        assert_eq!(
            om_watcher_park(watcher, r, 7, logs, never, 0, 0, 0, &mut err),
            OM_OK
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(om_watcher_unpark(watcher, 7, &mut err), OM_OK);
        assert_eq!(om_watcher_unpark(watcher, 7, &mut err), OM_EMPTY);

        // A record in a watched ring wakes it.
        assert_eq!(
            om_watcher_park(watcher, r, 8, logs, never, 0, 0, 0, &mut err),
            OM_OK
        );
        assert_eq!(
            om_writer_log(w, name.as_ptr(), ptr::null(), ptr::null(), 3, &mut err),
            OM_OK
        );
        assert_eq!(token(&mut wake), 8);
        assert_eq!(
            om_watcher_unpark(watcher, 8, &mut err),
            OM_EMPTY,
            "woken once"
        );

        // Still unread by the reader, so a new park wakes at once; once read
        // and committed, only a deadline does.
        assert_eq!(
            om_watcher_park(watcher, r, 9, logs, never, 0, 0, 0, &mut err),
            OM_OK
        );
        assert_eq!(token(&mut wake), 9);
        let mut batch = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_LOGS, 10, &mut batch, &mut err),
            OM_OK
        );
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_LOGS, batch.token, &mut err),
            OM_OK
        );
        assert_eq!(
            om_watcher_park(watcher, r, 10, logs, 0, 0, 0, 0, &mut err),
            OM_OK
        );
        assert_eq!(token(&mut wake), 10, "due");

        // Only the signals asked for are watched.
        let spans = 1 << OM_SIGNAL_TRACES;
        assert_eq!(
            om_watcher_park(watcher, r, 11, spans, never, 0, 0, 0, &mut err),
            OM_OK
        );
        assert_eq!(
            om_writer_log(w, name.as_ptr(), ptr::null(), ptr::null(), 4, &mut err),
            OM_OK
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            om_watcher_unpark(watcher, 11, &mut err),
            OM_OK,
            "a log does not wake a traces park"
        );

        assert_eq!(
            om_watcher_park(watcher, r, 12, 1 << 5, never, 0, 0, 0, &mut err),
            OM_ERR_ARGUMENT
        );
        assert_eq!(om_watcher_close(watcher), OM_OK);
        assert_eq!(om_watcher_close(watcher), OM_ERR_HANDLE);
        let mut rest = Vec::new();
        wake.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "no token after close: {rest:?}");
        assert_eq!(om_reader_close(r), OM_OK);
        assert_eq!(om_writer_close(w), OM_OK);
    }
}

#[test]
#[allow(unsafe_code)]
fn a_park_wakes_once_as_many_records_as_asked_arrived() {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let r = open(&path);
    let (mut wake, notify) = std::io::pipe().unwrap();
    let mut err = OmError::default();
    let mut watcher = ptr::null_mut();
    let name = CString::new("requests").unwrap();
    let metrics = 1 << OM_SIGNAL_METRICS;
    let never = u64::MAX;
    // SAFETY: handles from this library; other pointers valid.
    unsafe {
        let add = |n: usize| {
            for _ in 0..n {
                let mut e = OmError::default();
                let rc =
                    om_writer_counter_add(w, name.as_ptr(), ptr::null(), ptr::null(), 1, 1, &mut e);
                assert_eq!(rc, OM_OK, "{}", e.message());
            }
        };
        assert_eq!(
            om_watcher_start(1_000_000, notify.as_raw_fd(), &mut watcher, &mut err),
            OM_OK,
            "{}",
            err.message()
        );
        drop(notify);

        // Asked to wake at 5: 4 measurements leave it parked, the 5th wakes it.
        assert_eq!(
            om_watcher_park(watcher, r, 1, metrics, never, 0, 0, 5, &mut err),
            OM_OK
        );
        add(4);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            om_watcher_unpark(watcher, 1, &mut err),
            OM_OK,
            "4 of 5: still parked"
        );
        assert_eq!(
            om_watcher_park(watcher, r, 2, metrics, never, 0, 0, 5, &mut err),
            OM_OK
        );
        add(1);
        let mut b = [0u8; 8];
        wake.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 2);

        // Once read, the count starts again from the reader's next
        // measurement; the deadline wakes it with fewer.
        let mut batch = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_METRICS, 10, &mut batch, &mut err),
            OM_EMPTY,
            "measurements are aggregated, not handed out"
        );
        assert_eq!(batch.records_consumed, 5);
        assert_eq!(
            om_watcher_park(watcher, r, 3, metrics, 0, 0, 0, 5, &mut err),
            OM_OK
        );
        wake.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 3, "due");
        assert_eq!(
            om_watcher_park(watcher, r, 4, metrics, never, 0, 0, 2, &mut err),
            OM_OK
        );
        add(1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            om_watcher_unpark(watcher, 4, &mut err),
            OM_OK,
            "1 of 2 since the read: still parked"
        );

        // 0 and 1 both mean the first measurement.
        for (token, wake_at) in [(5, 0), (6, 1)] {
            assert_eq!(
                om_watcher_park(watcher, r, token, metrics, never, 0, 0, wake_at, &mut err),
                OM_OK
            );
            wake.read_exact(&mut b).unwrap();
            assert_eq!(u64::from_ne_bytes(b), token, "one unread: wakes at once");
        }

        // The count applies to measurements only: one log wakes a logs park.
        let logs = 1 << OM_SIGNAL_LOGS;
        assert_eq!(
            om_watcher_park(watcher, r, 7, logs | metrics, never, 0, 0, 1000, &mut err),
            OM_OK
        );
        let body = CString::new("x").unwrap();
        assert_eq!(
            om_writer_log(w, body.as_ptr(), ptr::null(), ptr::null(), 3, &mut err),
            OM_OK
        );
        wake.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 7);

        // A logs park asked to wake at 3 log records past the reader's next.
        let mut logs_batch = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_LOGS, 10, &mut logs_batch, &mut err),
            OM_OK
        );
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_LOGS, logs_batch.token, &mut err),
            OM_OK
        );
        assert_eq!(
            om_watcher_park(watcher, r, 8, logs, never, 0, 3, 0, &mut err),
            OM_OK
        );
        for _ in 0..2 {
            assert_eq!(
                om_writer_log(w, body.as_ptr(), ptr::null(), ptr::null(), 3, &mut err),
                OM_OK
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            om_watcher_unpark(watcher, 8, &mut err),
            OM_OK,
            "2 of 3 log records: still parked"
        );
        assert_eq!(
            om_watcher_park(watcher, r, 9, logs, never, 0, 3, 0, &mut err),
            OM_OK
        );
        assert_eq!(
            om_writer_log(w, body.as_ptr(), ptr::null(), ptr::null(), 3, &mut err),
            OM_OK
        );
        wake.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 9, "the 3rd log record wakes it");

        assert_eq!(om_watcher_close(watcher), OM_OK);
        assert_eq!(om_reader_close(r), OM_OK);
        assert_eq!(om_writer_close(w), OM_OK);
    }
}

#[test]
#[allow(unsafe_code)]
fn check_writer_reports_a_writer_gone_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let r = open(&path);
    let mut err = OmError::default();
    let mut gone = -1;
    // SAFETY: handles from this library; other pointers valid.
    unsafe {
        assert_eq!(om_reader_check_writer(r, &mut gone, &mut err), OM_OK);
        assert_eq!(gone, 0, "alive");
        assert_eq!(om_writer_close(w), OM_OK);
        assert_eq!(om_reader_check_writer(r, &mut gone, &mut err), OM_OK);
        assert_eq!(gone, 1, "found gone");
        assert_eq!(om_reader_check_writer(r, &mut gone, &mut err), OM_OK);
        assert_eq!(gone, 0, "reported once");
        assert_eq!(
            om_reader_check_writer(r, ptr::null_mut(), &mut err),
            OM_ERR_NULL
        );
        assert_eq!(om_reader_close(r), OM_OK);
    }
}

#[test]
#[allow(unsafe_code)]
fn watcher_ignores_span_events_held_until_a_checkpoint() {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let dir = tempfile::tempdir().unwrap();
    let path = cpath(&dir.path().join("a.otlp"));
    let w = writer(&path);
    let r = open(&path);
    let (mut wake, notify) = std::io::pipe().unwrap();
    let mut err = OmError::default();
    let mut watcher = ptr::null_mut();
    let name = CString::new("op").unwrap();
    let spans = 1 << OM_SIGNAL_TRACES;
    let never = u64::MAX;
    // SAFETY: handles from this library; other pointers valid.
    unsafe {
        assert_eq!(
            om_watcher_start(1_000_000, notify.as_raw_fd(), &mut watcher, &mut err),
            OM_OK,
            "{}",
            err.message()
        );
        drop(notify);
        assert_eq!(om_reader_hold_until_checkpoint(r, 1, &mut err), OM_OK);
        let span = |n: u8| {
            let mut e = OmError::default();
            let rc = om_writer_span(
                w,
                [n; 16].as_ptr(),
                [n; 8].as_ptr(),
                name.as_ptr(),
                ptr::null(),
                ptr::null(),
                1,
                2,
                &mut e,
            );
            assert_eq!(rc, OM_OK, "{}", e.message());
        };
        span(1);
        let mut batch = OmBatch::default();
        assert_eq!(
            om_reader_poll(r, OM_SIGNAL_TRACES, 10, &mut batch, &mut err),
            OM_OK
        );
        assert_eq!(batch.items, 1);
        assert_eq!(
            om_reader_commit(r, OM_SIGNAL_TRACES, batch.token, &mut err),
            OM_OK
        );

        // Read and committed, but its slots stay held (no checkpoint stored):
        // they are not new records for the watcher.
        assert_eq!(
            om_watcher_park(watcher, r, 1, spans, never, 0, 0, 0, &mut err),
            OM_OK
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            om_watcher_unpark(watcher, 1, &mut err),
            OM_OK,
            "still parked: nothing new was written"
        );

        // A new span does wake it.
        assert_eq!(
            om_watcher_park(watcher, r, 2, spans, never, 0, 0, 0, &mut err),
            OM_OK
        );
        span(2);
        let mut b = [0u8; 8];
        wake.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 2);

        assert_eq!(om_watcher_close(watcher), OM_OK);
        assert_eq!(om_reader_close(r), OM_OK);
        assert_eq!(om_writer_close(w), OM_OK);
    }
}
