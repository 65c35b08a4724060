//! `MmapLayer` as the global default subscriber (what the README shows):
//! a value whose `Debug` logs while it is recorded on the current span
//! calls back into the layer, which must not wait on a lock it holds.
//! (Its own test binary: the global default is set once per process.)

use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_mmap::{MmapExporterFile, MmapLayer};
use tracing_subscriber::layer::SubscriberExt;

/// Logs when formatted.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info!("formatting a value");
        let _inner = tracing::info_span!("while formatting").entered();
        f.write_str("chatty")
    }
}

#[test]
fn a_value_that_logs_while_recorded_does_not_hang_the_application() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("global.otlp"))
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(MmapLayer::new(&file)),
    )
    .unwrap();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let span = tracing::info_span!("outer", value = tracing::field::Empty);
        let _entered = span.enter();
        span.record("value", tracing::field::debug(Chatty));
        tracing::info!(value = ?Chatty, "an event");
        drop(_entered);
        drop(span);
        done.send(()).unwrap();
    });
    // A hang (a lock taken twice) never finishes: not a timing assertion.
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the thread hung");
    assert_eq!(file.drop_stats(), Default::default());
}
