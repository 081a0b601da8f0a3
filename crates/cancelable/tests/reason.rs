//! Reasons and the error type: construction, display, equality, serde.

use cancelable::{CancelKind, CancelReason, CancellationToken, Cancelled};

#[test]
fn display_is_kind_then_message() {
    assert_eq!(CancelReason::timeout().to_string(), "timeout");
    assert_eq!(
        CancelReason::timeout()
            .with_message(format!("no reply in {}s", 3))
            .to_string(),
        "timeout: no reply in 3s"
    );
}

#[test]
fn every_kind_has_a_snake_case_name_and_a_shorthand() {
    let cases = [
        (CancelReason::manual(), CancelKind::Manual, "manual"),
        (CancelReason::timeout(), CancelKind::Timeout, "timeout"),
        (CancelReason::signal(), CancelKind::Signal, "signal"),
        (
            CancelReason::condition(),
            CancelKind::Condition,
            "condition",
        ),
        (
            CancelReason::disconnected(),
            CancelKind::Disconnected,
            "disconnected",
        ),
        (CancelReason::shutdown(), CancelKind::Shutdown, "shutdown"),
    ];
    for (reason, kind, name) in cases {
        assert_eq!(reason.kind(), kind);
        assert_eq!(reason, CancelReason::from(kind));
        assert_eq!(kind.as_str(), name);
        assert_eq!(reason.to_string(), name);
        assert_eq!(reason.message(), None);
    }
}

#[test]
fn all_lists_every_kind_once() {
    let all = CancelKind::all();
    assert_eq!(all.len(), 6);
    for (i, kind) in all.iter().enumerate() {
        assert!(!all[..i].contains(kind));
    }
}

#[test]
fn static_and_owned_messages_compare_by_content() {
    let a = CancelReason::signal().with_message("SIGTERM");
    let b = CancelReason::signal().with_message(String::from("SIGTERM"));
    assert_eq!(a, b);
    assert_ne!(a, CancelReason::signal());
    assert_ne!(a, CancelReason::manual().with_message("SIGTERM"));
}

#[test]
fn every_kind_survives_the_trip_through_a_token() {
    for &kind in CancelKind::all() {
        let token = CancellationToken::new();
        let child = token.child_token();
        token.cancel_with(kind);
        assert_eq!(child.reason(), Some(CancelReason::new(kind)));
        let with_message = CancellationToken::new();
        with_message.cancel_with(CancelReason::new(kind).with_message("why"));
        assert_eq!(
            with_message.child_token().reason().unwrap().message(),
            Some("why")
        );
    }
}

#[test]
fn cancelled_error_displays_the_reason_and_is_an_error() {
    let err = Cancelled::new(CancelReason::disconnected().with_message("client left"));
    assert_eq!(
        err.to_string(),
        "operation cancelled (disconnected: client left)"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(err.clone());
    assert_eq!(boxed.to_string(), err.to_string());
    assert_eq!(err.into_reason().kind(), CancelKind::Disconnected);
}

#[test]
fn check_carries_the_reason_of_the_cancelling_ancestor() {
    let root = CancellationToken::new();
    let leaf = root.child_token().child_token();
    root.cancel_with(CancelReason::shutdown().with_message("deploy"));
    let err = leaf.check().unwrap_err();
    assert_eq!(
        err.reason(),
        &CancelReason::shutdown().with_message("deploy")
    );
}

#[test]
fn debug_names_kind_and_message() {
    let reason = CancelReason::condition().with_message("disk full");
    assert_eq!(
        format!("{reason:?}"),
        r#"CancelReason { kind: Condition, message: Some("disk full") }"#
    );
}

#[cfg(feature = "serde")]
#[test]
fn reasons_round_trip_through_json() {
    let reason = CancelReason::timeout().with_message("3s");
    let json = serde_json::to_string(&reason).unwrap();
    assert_eq!(json, r#"{"kind":"timeout","message":"3s"}"#);
    assert_eq!(serde_json::from_str::<CancelReason>(&json).unwrap(), reason);
    let bare: CancelReason = serde_json::from_str(r#"{"kind":"shutdown"}"#).unwrap();
    assert_eq!(bare, CancelReason::shutdown());
    assert_eq!(
        serde_json::to_string(&CancelKind::Disconnected).unwrap(),
        r#""disconnected""#
    );
    assert!(serde_json::from_str::<CancelReason>(r#"{"kind":"exploded"}"#).is_err());
}

#[test]
fn messages_survive_packing_on_every_pointer_width() {
    // A reason with a message is stored as a pointer in the node's state word. On 32-bit
    // targets heap blocks are only 4-aligned, so any bit the packing borrows from the pointer
    // must be kept free by the allocation itself: 64 allocations in a row hit every alignment
    // class the allocator hands out (run under Miri for i686 in CI).
    for i in 0..64 {
        let root = CancellationToken::new();
        let child = root.child_token();
        let message = format!("no reply in {i}s");
        root.cancel_with(CancelReason::timeout().with_message(message.clone()));
        for token in [&root, &child, &child.child_token()] {
            let reason = token.reason().expect("cancelled");
            assert_eq!(reason.kind(), CancelKind::Timeout);
            assert_eq!(reason.message(), Some(message.as_str()));
        }
    }
}
