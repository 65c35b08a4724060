//! The OpenTelemetry contexts [`MmapLayer`](crate::MmapLayer) makes current
//! while a `tracing` span is entered, so that OpenTelemetry API spans, log
//! records and measurements made inside it belong to it.
//!
//! Entering a span attaches its context; the guard that detaches it again
//! waits, with the layer and span it belongs to, on a per-thread list until
//! the span is exited on that thread (`tracing` enters and exits a span on
//! one thread). Exits may come in any order: OpenTelemetry's context stack
//! restores the right context either way. A guard is always dropped with no
//! borrow of the list held: dropping a context can run code (its values'
//! destructors) that enters spans again.

use std::cell::RefCell;

use opentelemetry::{Context, ContextGuard};
use tracing::span::Id;

/// Most spans entered and not yet exited that one thread keeps a context
/// for; the context of a span entered beyond that is not made current (so
/// a thread that enters spans and never exits them cannot grow the list
/// without bound).
const MAX_ENTERED: usize = 1024;

/// A span entered on this thread and the guard of the context it made current.
struct Entered {
    layer: u64,
    span: Id,
    _guard: ContextGuard,
}

thread_local! {
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// Makes `cx` current until [`exit`] with the same layer and span.
pub(crate) fn enter(layer: u64, span: &Id, cx: Context) {
    let guard = cx.attach();
    // `Some` when the guard could not be kept: it is dropped (the context
    // detached again) after the borrow.
    let refused = ENTERED.try_with(|entered| match entered.try_borrow_mut() {
        Ok(mut entered) if entered.len() < MAX_ENTERED => {
            entered.push(Entered {
                layer,
                span: span.clone(),
                _guard: guard,
            });
            None
        }
        _ => Some(guard),
    });
    drop(refused);
}

/// Restores the context that was current before `span` was entered (last
/// entered first, when it is entered more than once).
pub(crate) fn exit(layer: u64, span: &Id) {
    let taken = ENTERED.try_with(|entered| {
        let mut entered = entered.try_borrow_mut().ok()?;
        let at = entered
            .iter()
            .rposition(|e| e.layer == layer && e.span == *span)?;
        Some(entered.remove(at))
    });
    drop(taken);
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    fn context_of(span: u64) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(1),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ))
    }

    fn current_span() -> Option<u64> {
        let cx = Context::current();
        cx.has_active_span()
            .then(|| u64::from_be_bytes(cx.span().span_context().span_id().to_bytes()))
    }

    #[test]
    fn a_thread_keeps_at_most_max_entered_contexts() {
        let ids: Vec<Id> = (1..=MAX_ENTERED as u64 + 100).map(Id::from_u64).collect();
        for (i, id) in ids.iter().enumerate() {
            enter(7, id, context_of(i as u64 + 1));
        }
        assert_eq!(ENTERED.with(|e| e.borrow().len()), MAX_ENTERED);
        // Those beyond the bound were not made current.
        assert_eq!(current_span(), Some(MAX_ENTERED as u64));
        for id in ids.iter().rev() {
            exit(7, id);
        }
        assert_eq!(ENTERED.with(|e| e.borrow().len()), 0);
        assert_eq!(current_span(), None);
    }

    #[test]
    fn another_layers_exit_leaves_the_context() {
        let id = Id::from_u64(1);
        enter(1, &id, context_of(5));
        exit(2, &id);
        assert_eq!(current_span(), Some(5));
        exit(1, &id);
        assert_eq!(current_span(), None);
    }
}
