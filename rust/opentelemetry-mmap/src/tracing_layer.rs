//! A `tracing-subscriber` layer that writes `tracing` spans and events
//! straight into the file, without the OpenTelemetry API in between:
//! [`MmapLayer`] (feature `tracing`).
//!
//! | `tracing` | written |
//! |---|---|
//! | a span is created (`info_span!`, `#[instrument]`) | `StartSpan`: its name, its fields as attributes; its parent is the span's `tracing` parent (explicit, else the current span), else the active OpenTelemetry span of the current context; without either it starts a trace |
//! | `span.record(..)` | `UpdateAttributes` with the fields recorded |
//! | `span.follows_from(..)` | `AddLink` to that span |
//! | the span closes (its last handle is dropped) | `EndSpan` |
//! | an event (`info!`, `warn!`, ...) | a log record: the `message` field as body, the other fields as attributes, the level as severity (`TRACE` 1, `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17), the span it happened in as its trace context |
//!
//! Fields that `tracing-opentelemetry` gives a meaning are read the same way
//! and not written as attributes: `otel.name` (the span's name),
//! `otel.kind` (`server`, `client`, `producer`, `consumer`, `internal`),
//! `otel.status_code` (`ok`, `error`) and `otel.status_description`.
//!
//! A field's value is written as the OpenTelemetry value of its type:
//! integers (a `u64` or 128-bit integer beyond `i64` as its decimal
//! string), doubles, booleans, strings and bytes; a `Debug` or `Error`
//! value (and an event's formatted `message`) as the string it formats to,
//! at most [`MAX_FORMATTED_VALUE`] bytes (cut at a character boundary).
//! Nothing is allocated per span or event by this layer but the one
//! [`MmapSpanData`] the registry keeps with each span (and a status
//! description, when a span sets one).
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
use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{Status, TraceFlags};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::clock::now_unix_nano;
use crate::encode::{
    Attrs, EncodedKey, KeyRefs, ProtoWriter, Scalar, SpanIds, Val, put_kv, put_value_field,
};
use crate::file::{FileInner, MmapExporterFile};
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event};
use crate::span_events::{
    FLAG_HAS_IS_REMOTE, SpanKey, StartInfo, span_scope, write_attributes, write_end, write_link,
    write_name, write_start,
};
use crate::trace::active_span_ids;

use otlp_mmap_core::tags::event::BODY as EVENT_BODY;

/// Most bytes of a value formatted from `Debug` or `Error` (and of an
/// event's message); longer ones are cut at a character boundary.
pub const MAX_FORMATTED_VALUE: usize = 256;

/// Most bytes of a name given in `otel.name`.
const MAX_NAME: usize = 128;

/// A `tracing-subscriber` layer writing spans and events into one file (see
/// the [module](self) documentation).
#[derive(Clone, Debug)]
pub struct MmapLayer {
    file: Arc<FileInner>,
    scope_ref: i64,
    /// `scope_ref` as the field of every `SpanEvent`.
    span_scope: EncodedKey,
    /// `scope_ref` as the field of every log record's `Event`.
    event_scope: EncodedKey,
}

/// What the layer keeps with each span in the registry.
#[derive(Debug)]
pub struct MmapSpanData {
    key: SpanKey,
    /// `otel.status_code`: ok (true) or error (false), if set.
    status_ok: Option<bool>,
    /// `otel.status_description`, if set.
    description: Option<String>,
}

impl MmapSpanData {
    /// The span's trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.key.trace_id
    }

    /// The span's id.
    pub fn span_id(&self) -> [u8; 8] {
        self.key.span_id
    }
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
            file: file.inner.clone(),
            scope_ref,
            span_scope: span_scope(scope_ref),
            event_scope: event_scope(scope_ref),
        }
    }
}

impl<S> Layer<S> for MmapLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = match attrs.parent() {
            Some(p) => ctx.span(p),
            None if attrs.is_contextual() => ctx.lookup_current(),
            None => None,
        };
        let parent = parent.and_then(|p| {
            p.extensions()
                .get::<MmapSpanData>()
                .map(|d| (d.key.trace_id, d.key.span_id))
        });
        let parent = parent.or_else(|| {
            // A `tracing` root inside an OpenTelemetry span: its child.
            attrs
                .is_contextual()
                .then(active_span_ids)
                .flatten()
                .map(|ids| (ids.trace_id, ids.span_id))
        });
        let (trace_id, parent_span_id) = match parent {
            Some((trace_id, span_id)) => (trace_id, Some(span_id)),
            None => (RandomIdGenerator::default().new_trace_id().to_bytes(), None),
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
            flags: TraceFlags::SAMPLED.to_u8() as u32 | FLAG_HAS_IS_REMOTE,
        };
        with_keys(&self.file, |keys| {
            write_start(keys, &key, &info, &Fields::of_span(attrs));
        });
        span.extensions_mut().insert(MmapSpanData {
            key,
            status_ok: special.status_code,
            description: special.description,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<MmapSpanData>() else {
            return;
        };
        let mut special = SpecialFields::default();
        values.record(&mut special);
        if let Some(name) = special.name() {
            write_name(&self.file, &data.key, name);
        }
        if special.status_code.is_some() {
            data.status_ok = special.status_code;
        }
        if special.description.is_some() {
            data.description = special.description;
        }
        let fields = Fields::of_span(values);
        if fields.any() {
            with_keys(&self.file, |keys| {
                write_attributes(keys, &data.key, &fields);
            });
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(other)) = (ctx.span(id), ctx.span(follows)) else {
            return;
        };
        let ext = span.extensions();
        let other_ext = other.extensions();
        let (Some(data), Some(other)) =
            (ext.get::<MmapSpanData>(), other_ext.get::<MmapSpanData>())
        else {
            return;
        };
        let link = SpanIds {
            trace_id: other.key.trace_id,
            span_id: other.key.span_id,
            flags: TraceFlags::SAMPLED.to_u8() as u32,
        };
        with_keys(&self.file, |keys| {
            write_link(keys, &data.key, &link);
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span = ctx.event_span(event).and_then(|s| {
            s.extensions().get::<MmapSpanData>().map(|d| SpanIds {
                trace_id: d.key.trace_id,
                span_id: d.key.span_id,
                flags: TraceFlags::SAMPLED.to_u8() as u32,
            })
        });
        let span = span.or_else(|| event.is_contextual().then(active_span_ids).flatten());
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
        with_keys(&self.file, |keys| {
            write_log_event(keys, &info, &Fields::of_event(event));
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<MmapSpanData>() {
            let status = match data.status_ok {
                None => Status::Unset,
                Some(true) => Status::Ok,
                Some(false) => Status::Error {
                    description: Cow::Owned(data.description.take().unwrap_or_default()),
                },
            };
            write_end(&self.file, &data.key, now_unix_nano(), &status);
        }
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

/// Whether the layer reads `name` itself rather than writing it as an
/// attribute.
fn is_special(name: &str) -> bool {
    name.starts_with("otel.")
}

/// The fields of a span or event, as attributes: all but the special ones
/// (and an event's `message`, written as its body in the same visit).
struct Fields<'a, R: ?Sized> {
    fields: &'a R,
    /// The field of the `Event` the `message` field is written as.
    message_as: Option<u32>,
}

impl<'a, R: RecordFields + ?Sized> Fields<'a, R> {
    fn of_span(fields: &'a R) -> Self {
        Fields {
            fields,
            message_as: None,
        }
    }

    fn of_event(fields: &'a R) -> Self {
        Fields {
            fields,
            message_as: Some(EVENT_BODY),
        }
    }

    /// Whether there is any attribute.
    fn any(&self) -> bool {
        let mut any = false;
        self.for_each_attr(&mut |_, _| any = true);
        any
    }
}

impl<R: RecordFields + ?Sized> Attrs for Fields<'_, R> {
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        self.fields.record(&mut AttrVisitor {
            f,
            skip_message: self.message_as.is_some(),
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
            skip_message: false,
        });
    }
}

/// Hands each field to `f` as an attribute value.
struct AttrVisitor<'f, F> {
    f: &'f mut F,
    skip_message: bool,
}

impl<F: FnMut(&str, Val<'_>)> AttrVisitor<'_, F> {
    #[inline]
    fn put(&mut self, field: &Field, v: Scalar<'_>) {
        let name = field.name();
        if is_special(name) || (self.skip_message && name == "message") {
            return;
        }
        (self.f)(name, Val::Scalar(&v));
    }

    fn put_formatted(&mut self, field: &Field, args: fmt::Arguments<'_>) {
        let name = field.name();
        if is_special(name) || (self.skip_message && name == "message") {
            return;
        }
        let mut text = Formatted::<MAX_FORMATTED_VALUE>::new();
        text.format(args);
        (self.f)(name, Val::Scalar(&Scalar::string(text.as_str())));
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
            "otel.status_description" => self.description = Some(value.to_string()),
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

    /// Formats `args`, replacing what was there.
    fn format(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
        // A `Debug` implementation that fails leaves what it wrote.
        let _ = self.write_fmt(args);
    }

    fn as_str(&self) -> &str {
        // Only whole characters are copied in (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> fmt::Write for Formatted<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
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
