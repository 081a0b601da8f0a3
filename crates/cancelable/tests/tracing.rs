//! The `tracing` feature: a span per operation (id, name) and an event per status change.
#![cfg(all(feature = "tracing", feature = "std", not(loom)))]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use cancelable::{CancelReason, Operation};
use futures_lite::future::block_on;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Writes each span's and event's fields as `name=value` lines.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);
impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = String::from("event");
        event.record(&mut Line(&mut line));
        if line.contains("status=") {
            self.0.lock().unwrap().push(line);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_span_per_operation_and_an_event_per_status_change_with_the_reason() {
    let recorder = Recorder::default();
    let lines = recorder.0.clone();
    tracing::subscriber::with_default(recorder, || {
        let out: Result<(), _> =
            block_on(Operation::new("traced").id("t-1").run(|cx| async move {
                cx.token()
                    .cancel_with(CancelReason::timeout().with_message("slow"));
                cx.check()
            }));
        assert!(out.is_err());
    });
    let lines = lines.lock().unwrap();
    assert_eq!(lines[0], "span operation id=t-1 name=traced");
    assert!(lines[1].contains("status=running"), "{lines:?}");
    assert!(lines[2].contains("status=cancelled"), "{lines:?}");
    assert!(lines[2].contains("reason=timeout: slow"), "{lines:?}");
}
