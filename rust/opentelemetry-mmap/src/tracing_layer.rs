//! A `tracing-subscriber` layer that writes `tracing` spans and events
//! straight into the file, without the OpenTelemetry API in between:
//! [`MmapLayer`] (feature `tracing`).
//!
//! | `tracing` | written |
//! |---|---|
//! | a span is created (`info_span!`, `#[instrument]`) | `StartSpan`: its name, its fields as attributes; its parent is its nearest `tracing` ancestor this layer sees (the explicit parent, else the current span; spans a per-layer filter drops are skipped), else, for a contextual span, the active OpenTelemetry span of the current context (marked remote when it is); without either it starts a trace |
//! | `span.record(..)` | `UpdateAttributes` with the fields recorded |
//! | `span.follows_from(..)` | `AddLink` to that span |
//! | the span closes (its last handle is dropped) | `EndSpan` |
//! | an event (`info!`, `warn!`, ...) | a log record: the `message` field as body, the other fields as attributes, the level as severity (`TRACE` 1, `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17), the span it happened in as its trace context |
//!
//! Four fields of a span mean what they mean to `tracing-opentelemetry`
//! and are not written as attributes: `otel.name` (the span's name, at most
//! 128 bytes), `otel.kind` (`server`, `client`, `producer`, `consumer`,
//! `internal`; read when the span is created only: the format cannot change
//! a span's kind), `otel.status_code` (`ok`, `error`) and
//! `otel.status_description` (alone, it makes the status an error). Other
//! `otel.*` fields, and every field of an event, are attributes.
//!
//! A field's value is written as the OpenTelemetry value of its type:
//! integers (a `u64` or 128-bit integer beyond `i64` as its decimal
//! string), doubles, booleans, strings and bytes; a `Debug` or `Error`
//! value (and an event's formatted `message`) as the string it formats to,
//! at most [`MAX_FORMATTED_VALUE`] bytes (cut at a character boundary; a
//! `Debug` that fails or panics leaves what it wrote, and its panic stays
//! in the layer). A record too large for its slot is written again smaller:
//! a span's start without its attributes, which follow one per
//! `UpdateAttributes` record; an event with its message only. Only what is
//! still too large is dropped and counted. A status description too long
//! for the end's slot is cut.
//!
//! Not written: an event's target, file and module (the format has no field
//! for them), and an event name. Spans and events made while the
//! OpenTelemetry context suppresses telemetry are not written. Several
//! `MmapLayer`s may serve one subscriber (one per file, say): each keeps its
//! own ids of a span.
//!
//! While a span is entered, its OpenTelemetry context is the current one (as
//! `tracing-opentelemetry` does by default): an OpenTelemetry API span
//! started inside it is its child, and a log record or a measurement's
//! exemplar made inside it carries its ids. The context is its explicit
//! parent's (`parent: &span`, a span of this layer's), else the one current
//! when it was created, with the span as its active span (not recording:
//! the layer writes the span). Entered where telemetry is suppressed, it stays
//! suppressed. [`MmapLayer::with_context_activation`] turns this off.
//!
//! Only one layer of a subscriber should make contexts current: with two
//! (two `MmapLayer`s, or one and `tracing-opentelemetry`, which does it by
//! default) the outermost one's context wins inside a span. Turn it off on
//! the others. A thread keeps the contexts of at most 1,024 spans entered
//! at once (beyond that a span is entered without its context), and a
//! layer replaced (`tracing_subscriber::reload`) between a span's enter and
//! its exit leaves that span's context current on the thread.
//!
//! Nothing is allocated per span or event by this layer but the small entry
//! the registry keeps with each span, the span's OpenTelemetry context (one
//! shared allocation; none without context activation), and a status
//! description when a span sets one. No lock of the registry is held while a
//! value is formatted.
//!
//! ```
//! use opentelemetry_mmap::{MmapExporterFile, MmapLayer};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.otlp");
//! let file = MmapExporterFile::builder().with_path(&path).build()?;
//! let subscriber = tracing_subscriber::registry().with(MmapLayer::new(&file));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("GET /items", http.request.method = "GET");
//!     let _entered = span.enter();
//!     tracing::info!(item.id = 42, "loaded");
//! });
//! assert_eq!(file.drop_stats(), Default::default());
//! # Ok::<(), opentelemetry_mmap::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context as OtelContext, InstrumentationScope};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use smallvec::{SmallVec, smallvec};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::clock::now_unix_nano;
use crate::encode::{
    Attrs, EncodedKey, KeyRefs, ProtoWriter, Scalar, SpanIds, SplitAttrs, Val, put_kv,
    put_value_field,
};
use crate::file::{FileInner, MmapExporterFile, Oversized};
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event, write_log_event_as};
use crate::span_events::{
    FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, SpanKey, StartInfo, span_scope, write_attributes_or_split,
    write_end, write_link, write_name, write_start_or_split,
};
use crate::tracing_context;

use otlp_mmap_core::tags::event::BODY as EVENT_BODY;

/// Most bytes of a value formatted from `Debug` or `Error` (and of an
/// event's message); longer ones are cut at a character boundary.
pub const MAX_FORMATTED_VALUE: usize = 256;

/// Most bytes of a name given in `otel.name`.
const MAX_NAME: usize = 128;

/// A `tracing-subscriber` layer writing spans and events into one file (see
/// the [module](self) documentation). Several may serve one subscriber
/// (for several files, or scopes): each keeps its own ids for a span.
#[derive(Debug)]
pub struct MmapLayer {
    /// Tells this layer's entries of a span apart from another's.
    id: u64,
    file: Arc<FileInner>,
    scope_ref: i64,
    /// `scope_ref` as the field of every `SpanEvent`.
    span_scope: EncodedKey,
    /// `scope_ref` as the field of every log record's `Event`.
    event_scope: EncodedKey,
    /// Whether an entered span's OpenTelemetry context is made current.
    activate_context: bool,
}

/// Numbers the layers of the process.
static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(1);

impl Clone for MmapLayer {
    /// Another layer on the same file and scope, with ids of its own.
    fn clone(&self) -> Self {
        MmapLayer {
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            file: self.file.clone(),
            scope_ref: self.scope_ref,
            span_scope: self.span_scope,
            event_scope: self.event_scope,
            activate_context: self.activate_context,
        }
    }
}

/// What the layers keep with a span in the registry: an entry per
/// `MmapLayer` that saw it.
#[derive(Debug)]
struct MmapSpans(SmallVec<[LayerSpan; 1]>);

/// One layer's entry for a span.
#[derive(Debug)]
struct LayerSpan {
    layer: u64,
    key: SpanKey,
    /// `otel.status_code`: ok (true) or error (false), if set.
    status_ok: Option<bool>,
    /// `otel.status_description` (at most [`MAX_FORMATTED_VALUE`] bytes), if set.
    description: Option<String>,
    /// The context made current while the span is entered (with context
    /// activation).
    context: Option<OtelContext>,
}

impl MmapLayer {
    /// A layer writing into `file`, under the instrumentation scope
    /// `opentelemetry-mmap` (this crate's name and version).
    pub fn new(file: &MmapExporterFile) -> Self {
        let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Self::with_scope(file, scope)
    }

    /// A layer writing into `file` under `scope`.
    pub fn with_scope(file: &MmapExporterFile, scope: InstrumentationScope) -> Self {
        let scope_ref = file.scope_ref(&scope);
        MmapLayer {
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            file: file.inner.clone(),
            scope_ref,
            span_scope: span_scope(scope_ref),
            event_scope: event_scope(scope_ref),
            activate_context: true,
        }
    }

    /// Whether a span's OpenTelemetry context is the current one while the
    /// span is entered (on by default; see the [module](self)
    /// documentation). Off, OpenTelemetry API spans, log records and
    /// exemplars made inside a `tracing` span do not see it, and a span
    /// costs one allocation less.
    pub fn with_context_activation(mut self, activate: bool) -> Self {
        self.activate_context = activate;
        self
    }

    /// This layer's ids of `span`, if it saw it start. (The extensions'
    /// lock is released on return: nothing runs under it.)
    fn key_of<R: for<'a> LookupSpan<'a>>(&self, span: &SpanRef<'_, R>) -> Option<SpanKey> {
        self.entry_of(span, |e| e.key)
    }

    /// `read` of this layer's entry for `span`, if it saw it start (under
    /// the extensions' lock: `read` only copies out).
    fn entry_of<R: for<'a> LookupSpan<'a>, T>(
        &self,
        span: &SpanRef<'_, R>,
        read: impl FnOnce(&LayerSpan) -> T,
    ) -> Option<T> {
        let ext = span.extensions();
        let spans = ext.get::<MmapSpans>()?;
        spans.0.iter().find(|s| s.layer == self.id).map(read)
    }
}

/// Whether telemetry is suppressed in the current OpenTelemetry context
/// (an exporter's own work), and the context's active span: its ids and
/// whether it is remote.
fn otel_context() -> (bool, Option<(SpanIds, bool)>) {
    OtelContext::map_current(|cx| {
        let active = if cx.has_active_span() {
            let span = cx.span();
            let sc = span.span_context();
            SpanIds::of(sc).map(|ids| (ids, sc.is_remote()))
        } else {
            None
        };
        (cx.is_telemetry_suppressed(), active)
    })
}

impl<S> Layer<S> for MmapLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let (suppressed, active) = otel_context();
        if suppressed {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // The nearest ancestor this layer sees (explicit or contextual;
        // a per-layer filter's dropped spans are skipped); without one, the
        // active OpenTelemetry span, unless the span is an explicit root.
        // An explicit parent's OpenTelemetry context, when it is a span of
        // this layer's: the new span's context is built on it (its baggage
        // and other values), whatever context is current here. A contextual
        // parent is the span entered here: the current context is its own,
        // with what was attached inside it since.
        let mut parent_context = None;
        let parent = match span.parent() {
            Some(p) => self
                .entry_of(&p, |e| (e.key, e.context.clone()))
                .map(|(k, cx)| {
                    if attrs.parent().is_some() {
                        parent_context = cx;
                    }
                    (k.trace_id, k.span_id, false)
                }),
            None if attrs.is_contextual() => {
                active.map(|(ids, remote)| (ids.trace_id, ids.span_id, remote))
            }
            None => None,
        };
        let (trace_id, parent_span_id, remote) = match parent {
            Some((trace_id, span_id, remote)) => (trace_id, Some(span_id), remote),
            None => (
                RandomIdGenerator::default().new_trace_id().to_bytes(),
                None,
                false,
            ),
        };
        let key = SpanKey {
            trace_id,
            span_id: RandomIdGenerator::default().new_span_id().to_bytes(),
            scope_ref: self.scope_ref,
            scope: self.span_scope,
        };
        let mut special = SpecialFields::default();
        attrs.record(&mut special);
        let info = StartInfo {
            parent_span_id,
            name: special.name().unwrap_or(attrs.metadata().name()),
            kind: special.kind.unwrap_or(1),
            start_time_unix_nano: now_unix_nano(),
            flags: TraceFlags::SAMPLED.to_u8() as u32
                | FLAG_HAS_IS_REMOTE
                | if remote { FLAG_IS_REMOTE } else { 0 },
        };
        with_keys(&self.file, |keys| {
            write_start_or_split(keys, &key, &info, &Fields::of_span(attrs))
        });
        let context = self.activate_context.then(|| {
            let span_context = SpanContext::new(
                TraceId::from_bytes(key.trace_id),
                SpanId::from_bytes(key.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            );
            match &parent_context {
                Some(parent) => parent.with_remote_span_context(span_context),
                None => OtelContext::map_current(|cx| cx.with_remote_span_context(span_context)),
            }
        });
        let entry = LayerSpan {
            layer: self.id,
            key,
            status_ok: special.status_code,
            description: special.description,
            context,
        };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<MmapSpans>() {
            Some(spans) => spans.0.push(entry),
            None => ext.insert(MmapSpans(smallvec![entry])),
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let Some(key) = self.key_of(&span) else {
            return;
        };
        // The values are formatted (user code) with no lock held.
        let mut special = SpecialFields::default();
        values.record(&mut special);
        if let Some(name) = special.name() {
            write_name(&self.file, &key, name);
        }
        if special.status_code.is_some() || special.description.is_some() {
            let mut ext = span.extensions_mut();
            let entry = ext
                .get_mut::<MmapSpans>()
                .and_then(|s| s.0.iter_mut().find(|s| s.layer == self.id));
            if let Some(entry) = entry {
                entry.status_ok = special.status_code.or(entry.status_ok);
                if special.description.is_some() {
                    entry.description = special.description;
                }
            }
        }
        let fields = Fields::of_span(values);
        if fields.count() > 0 {
            with_keys(&self.file, |keys| {
                write_attributes_or_split(keys, &key, &fields)
            });
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(other) = ctx.span(follows).and_then(|s| self.key_of(&s)) else {
            return;
        };
        let Some(key) = ctx.span(id).and_then(|s| self.key_of(&s)) else {
            return;
        };
        let link = SpanIds {
            trace_id: other.trace_id,
            span_id: other.span_id,
            flags: TraceFlags::SAMPLED.to_u8() as u32,
        };
        with_keys(&self.file, |keys| {
            write_link(keys, &key, &link);
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let (suppressed, active) = otel_context();
        if suppressed {
            return;
        }
        let span = ctx
            .event_span(event)
            .and_then(|s| self.key_of(&s))
            .map(|k| SpanIds {
                trace_id: k.trace_id,
                span_id: k.span_id,
                flags: TraceFlags::SAMPLED.to_u8() as u32,
            });
        let span = span.or_else(|| {
            event
                .is_contextual()
                .then_some(active)
                .flatten()
                .map(|(ids, _)| ids)
        });
        let level = *event.metadata().level();
        let info = EventInfo {
            scope: self.event_scope,
            time_unix_nano: now_unix_nano(),
            severity_number: severity_number(level),
            severity_text: level.as_str(),
            // The `message` field, written as the body as the fields are
            // visited (see `Fields::of_event`).
            body: None,
            event_name: "",
            span,
        };
        let fields = Fields::of_event(event);
        with_keys(&self.file, |keys| {
            // Too large for a slot (counted): written again with its message
            // only.
            if write_log_event_as(keys, &info, &fields, Oversized::WrittenAgain).0 {
                let _ = write_log_event(keys, &info, &fields.message_only());
            }
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !self.activate_context {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // Cloned out, so that the registry's lock is not held while the
        // context is attached.
        if let Some(context) = self.entry_of(&span, |e| e.context.clone()).flatten() {
            // Entered where telemetry is suppressed, it stays suppressed.
            let context = if OtelContext::is_current_telemetry_suppressed() {
                context.with_telemetry_suppressed()
            } else {
                context
            };
            tracing_context::enter(self.id, id, context);
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        if self.activate_context {
            tracing_context::exit(self.id, id);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let entry = {
            let mut ext = span.extensions_mut();
            let Some(spans) = ext.get_mut::<MmapSpans>() else {
                return;
            };
            let Some(i) = spans.0.iter().position(|s| s.layer == self.id) else {
                return;
            };
            spans.0.swap_remove(i)
        };
        // As tracing-opentelemetry: a description alone makes an error.
        let status = match (entry.status_ok, entry.description) {
            (Some(true), _) => Status::Ok,
            (Some(false), d) | (None, d @ Some(_)) => Status::Error {
                description: Cow::Owned(d.unwrap_or_default()),
            },
            (None, None) => Status::Unset,
        };
        write_end(&self.file, &entry.key, now_unix_nano(), &status);
    }
}

/// OpenTelemetry's severity number of a `tracing` level.
fn severity_number(level: Level) -> u64 {
    match level {
        Level::TRACE => 1,
        Level::DEBUG => 5,
        Level::INFO => 9,
        Level::WARN => 13,
        Level::ERROR => 17,
    }
}

/// The fields of a span the layer reads itself rather than writing them as
/// attributes (as `tracing-opentelemetry` does).
const SPECIAL_FIELDS: [&str; 4] = [
    "otel.name",
    "otel.kind",
    "otel.status_code",
    "otel.status_description",
];

fn is_special(name: &str) -> bool {
    SPECIAL_FIELDS.contains(&name)
}

/// The fields of a span or event as attributes: for a span, all but the
/// special ones; for an event, all but its `message`, written as its body
/// in the same visit.
struct Fields<'a, R: ?Sized> {
    fields: &'a R,
    /// For an event: the field of the `Event` the `message` is written as.
    message_as: Option<u32>,
    /// Only the attribute of this index (`usize::MAX`: none).
    only: Option<usize>,
}

impl<'a, R: RecordFields + ?Sized> Fields<'a, R> {
    fn of_span(fields: &'a R) -> Self {
        Fields {
            fields,
            message_as: None,
            only: None,
        }
    }

    fn of_event(fields: &'a R) -> Self {
        Fields {
            fields,
            message_as: Some(EVENT_BODY),
            only: None,
        }
    }

    /// The same fields with only the attribute of index `i`.
    fn with_only(&self, i: usize) -> Self {
        Fields {
            fields: self.fields,
            message_as: self.message_as,
            only: Some(i),
        }
    }

    /// An event's message, without its attributes.
    fn message_only(&self) -> Self {
        self.with_only(usize::MAX)
    }
}

impl<R: RecordFields + ?Sized> SplitAttrs for Fields<'_, R> {
    /// How many attributes there are (by their names: no value is
    /// formatted).
    fn count(&self) -> usize {
        let mut count = AttrCount {
            special: self.message_as.is_none(),
            skip: self.message_as.map(|_| "message"),
            n: 0,
        };
        self.fields.record(&mut count);
        count.n
    }

    fn only(&self, i: usize) -> impl Attrs + '_ {
        self.with_only(i)
    }
}

impl<R: RecordFields + ?Sized> Attrs for Fields<'_, R> {
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        self.fields.record(&mut AttrVisitor {
            f,
            special: self.message_as.is_none(),
            skip_message: self.message_as.is_some(),
            only: self.only,
            index: 0,
        });
    }

    /// The attributes, and an event's message as its body, in one visit
    /// (the order of a message's fields is free).
    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        let message_as = self.message_as;
        let mut put = |name: &str, v: Val<'_>| match message_as {
            Some(body) if name == "message" => put_value_field(w, body, v, keys),
            _ => put_kv(w, field, name, v, keys),
        };
        self.fields.record(&mut AttrVisitor {
            f: &mut put,
            special: message_as.is_none(),
            skip_message: false,
            only: self.only,
            index: 0,
        });
    }
}

/// Counts the attributes of a span's or event's fields.
struct AttrCount {
    /// Whether the special fields are left out (a span's).
    special: bool,
    /// A field left out (an event's `message`).
    skip: Option<&'static str>,
    n: usize,
}

impl Visit for AttrCount {
    fn record_debug(&mut self, field: &Field, _value: &dyn fmt::Debug) {
        let name = field.name();
        if !(self.special && is_special(name)) && self.skip != Some(name) {
            self.n += 1;
        }
    }
}

/// Hands each field to `f` as an attribute value (an event's `message`
/// too, unless `skip_message`).
struct AttrVisitor<'f, F> {
    f: &'f mut F,
    /// Whether the special fields are left out (a span's).
    special: bool,
    skip_message: bool,
    /// Only the attribute of this index.
    only: Option<usize>,
    /// Index of the next attribute (the message is not one).
    index: usize,
}

impl<F: FnMut(&str, Val<'_>)> AttrVisitor<'_, F> {
    /// Whether the field is handed on (and counts it).
    #[inline]
    fn wanted(&mut self, name: &'static str) -> bool {
        if self.special && is_special(name) {
            return false;
        }
        if name == "message" && !self.special {
            // An event's message: its body, never one of its attributes.
            return !self.skip_message;
        }
        let i = self.index;
        self.index += 1;
        self.only.is_none_or(|only| only == i)
    }

    #[inline]
    fn put(&mut self, field: &Field, v: Scalar<'_>) {
        let name = field.name();
        if self.wanted(name) {
            (self.f)(name, Val::Scalar(&v));
        }
    }

    fn put_formatted(&mut self, field: &Field, args: fmt::Arguments<'_>) {
        let name = field.name();
        if self.wanted(name) {
            let mut text = Formatted::<MAX_FORMATTED_VALUE>::new();
            text.format(args);
            (self.f)(name, Val::Scalar(&Scalar::string(text.as_str())));
        }
    }
}

impl<F: FnMut(&str, Val<'_>)> Visit for AttrVisitor<'_, F> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Scalar::Double(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Scalar::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Scalar::Int(v)),
            Err(_) => self.put_formatted(field, format_args!("{value}")),
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Scalar::Int(v)),
            Err(_) => self.put_formatted(field, format_args!("{value}")),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Scalar::Int(v)),
            Err(_) => self.put_formatted(field, format_args!("{value}")),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Scalar::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Scalar::string(value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.put(field, Scalar::bytes(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_formatted(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put_formatted(field, format_args!("{value:?}"));
    }
}

/// The `otel.*` fields of a span.
#[derive(Default)]
struct SpecialFields {
    name: Option<Formatted<MAX_NAME>>,
    kind: Option<u64>,
    status_code: Option<bool>,
    description: Option<String>,
}

impl SpecialFields {
    fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Formatted::as_str)
    }

    fn set(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        match field.name() {
            "otel.name" => {
                let mut name = Formatted::new();
                name.format(value);
                self.name = Some(name);
            }
            "otel.kind" => {
                let mut kind = Formatted::<16>::new();
                kind.format(value);
                let kinds = ["internal", "server", "client", "producer", "consumer"];
                if let Some(i) = kinds
                    .iter()
                    .position(|k| k.eq_ignore_ascii_case(kind.as_str()))
                {
                    self.kind = Some(i as u64 + 1);
                }
            }
            "otel.status_code" => {
                let mut code = Formatted::<16>::new();
                code.format(value);
                if code.as_str().eq_ignore_ascii_case("ok") {
                    self.status_code = Some(true);
                } else if code.as_str().eq_ignore_ascii_case("error") {
                    self.status_code = Some(false);
                }
            }
            "otel.status_description" => {
                let mut description = Formatted::<MAX_FORMATTED_VALUE>::new();
                description.format(value);
                self.description = Some(description.as_str().to_owned());
            }
            _ => {}
        }
    }
}

impl Visit for SpecialFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if is_special(field.name()) {
            self.set(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if is_special(field.name()) {
            self.set(field, format_args!("{value:?}"));
        }
    }
}

/// Text formatted on the stack, cut at `N` bytes (at a character boundary).
struct Formatted<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Formatted<N> {
    fn new() -> Self {
        Formatted {
            buf: [0; N],
            len: 0,
        }
    }

    /// Formats `args`, replacing what was there. A `Debug` or `Display`
    /// implementation that fails, or panics, leaves what it wrote: telemetry
    /// never panics in the application.
    fn format(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.write_fmt(args)));
    }

    fn as_str(&self) -> &str {
        // Only whole characters are copied in (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> fmt::Write for Formatted<N> {
    /// Copies what fits; an error once full, which ends the formatting (a
    /// large value is not formatted to the end only to be cut).
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_text_is_cut_at_a_character_boundary() {
        let mut f = Formatted::<5>::new();
        f.format(format_args!("ab{}", "é€x"));
        // "ab" + "é" (2 bytes) fit in 5; "€" (3 bytes) does not.
        assert_eq!(f.as_str(), "abé");
        f.format(format_args!(""));
        assert_eq!(f.as_str(), "");
    }
}
