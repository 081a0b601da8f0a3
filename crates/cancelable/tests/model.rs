//! Model-based property test: random sequences of tree operations, checked after every step
//! against a plain reference model (flags, reasons, callback runs).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use cancelable::{
    CancelCallback, CancelKind, CancelReason, CancellationToken, WeakCancellationToken,
};
use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Clone, Debug)]
enum Op {
    New,
    Child(Index),
    AnyOf(Vec<Index>),
    Clone(Index),
    Drop(Index),
    Cancel(Index, Index),
    OnCancel(Index),
    Unregister(Index),
    Downgrade(Index),
    Upgrade(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::New),
        4 => any::<Index>().prop_map(Op::Child),
        2 => prop::collection::vec(any::<Index>(), 0..4).prop_map(Op::AnyOf),
        2 => any::<Index>().prop_map(Op::Clone),
        3 => any::<Index>().prop_map(Op::Drop),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, k)| Op::Cancel(i, k)),
        3 => any::<Index>().prop_map(Op::OnCancel),
        2 => any::<Index>().prop_map(Op::Unregister),
        2 => any::<Index>().prop_map(Op::Downgrade),
        2 => any::<Index>().prop_map(Op::Upgrade),
    ]
}

/// The reference: nodes never leave it; what is reachable is decided by edges alone. A node is
/// alive while a strong handle to it exists (a node without handles may still link its children
/// to its ancestors, but it can no longer be upgraded to).
#[derive(Default)]
struct Model {
    reasons: Vec<Option<CancelReason>>,
    /// Edges parent -> children, including `any_of` links.
    below: Vec<Vec<usize>>,
    /// Callbacks waiting on each node (by callback id).
    waiting: Vec<Vec<usize>>,
    /// How often each callback has run, and whether it was unregistered in time.
    runs: Vec<usize>,
    removed: Vec<bool>,
    /// The node each callback was registered on.
    owner: Vec<usize>,
}

impl Model {
    fn node(&mut self, reason: Option<CancelReason>) -> usize {
        self.reasons.push(reason);
        self.below.push(Vec::new());
        self.waiting.push(Vec::new());
        self.reasons.len() - 1
    }

    fn cancel(&mut self, start: usize, reason: &CancelReason) -> bool {
        if self.reasons[start].is_some() {
            return false;
        }
        let mut queue = VecDeque::from([start]);
        self.reasons[start] = Some(reason.clone());
        while let Some(n) = queue.pop_front() {
            for cb in std::mem::take(&mut self.waiting[n]) {
                if !self.removed[cb] {
                    self.runs[cb] += 1;
                }
            }
            for &c in &self.below[n] {
                if self.reasons[c].is_none() {
                    self.reasons[c] = Some(reason.clone());
                    queue.push_back(c);
                }
            }
        }
        true
    }
}

struct Handle {
    token: CancellationToken,
    node: usize,
}

struct Callback {
    handle: Option<CancelCallback>,
    id: usize,
    /// Registered on a live token: the handle keeps the node alive until it goes (one made on
    /// a cancelled token ran at once and holds nothing).
    registered: bool,
}

struct Weak {
    weak: WeakCancellationToken,
    node: usize,
}

/// Whether `node` still has a strong handle: a token, or a callback registration (which keeps
/// its token's node alive until it is unregistered or dropped).
fn alive(handles: &[Handle], callbacks: &[Callback], model: &Model, node: usize) -> bool {
    handles.iter().any(|h| h.node == node)
        || callbacks
            .iter()
            .any(|c| c.registered && c.handle.is_some() && model.owner[c.id] == node)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut handles: Vec<Handle> = Vec::new();
    let mut callbacks: Vec<Callback> = Vec::new();
    let mut weaks: Vec<Weak> = Vec::new();
    // What each callback saw, written by the callbacks themselves.
    let seen: Arc<Mutex<Vec<Vec<CancelReason>>>> = Arc::default();

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::New => {
                let node = model.node(None);
                handles.push(Handle {
                    token: CancellationToken::new(),
                    node,
                });
            }
            Op::Child(i) if !handles.is_empty() => {
                let parent = &handles[i.index(handles.len())];
                let (token, parent_node) = (parent.token.child_token(), parent.node);
                let node = model.node(model.reasons[parent_node].clone());
                model.below[parent_node].push(node);
                handles.push(Handle { token, node });
            }
            Op::AnyOf(picks) => {
                let parents: Vec<usize> = if handles.is_empty() {
                    Vec::new()
                } else {
                    picks.iter().map(|i| i.index(handles.len())).collect()
                };
                let token = CancellationToken::any_of(parents.iter().map(|&p| &handles[p].token));
                let inherited = parents
                    .iter()
                    .find_map(|&p| model.reasons[handles[p].node].clone());
                let node = model.node(inherited);
                for &p in &parents {
                    model.below[handles[p].node].push(node);
                }
                handles.push(Handle { token, node });
            }
            Op::Clone(i) if !handles.is_empty() => {
                let h = &handles[i.index(handles.len())];
                let clone = Handle {
                    token: h.token.clone(),
                    node: h.node,
                };
                prop_assert_eq!(&clone.token, &h.token);
                handles.push(clone);
            }
            Op::Drop(i) if !handles.is_empty() => {
                let i = i.index(handles.len());
                handles.swap_remove(i);
            }
            Op::Cancel(i, kind) if !handles.is_empty() => {
                let h = &handles[i.index(handles.len())];
                let reason = CancelReason::new(*kind.get(CancelKind::all()))
                    .with_message(format!("step {step}"));
                let expected = model.cancel(h.node, &reason);
                prop_assert_eq!(
                    h.token.cancel_with(reason),
                    expected,
                    "cancel_with result at step {}",
                    step
                );
            }
            Op::OnCancel(i) if !handles.is_empty() => {
                let h = &handles[i.index(handles.len())];
                let id = model.runs.len();
                model.runs.push(0);
                model.removed.push(false);
                model.owner.push(h.node);
                seen.lock().unwrap().push(Vec::new());
                let log = seen.clone();
                let handle = h
                    .token
                    .on_cancel(move |reason| log.lock().unwrap()[id].push(reason.clone()));
                let registered = model.reasons[h.node].is_none();
                match registered {
                    false => model.runs[id] += 1,
                    true => model.waiting[h.node].push(id),
                }
                callbacks.push(Callback {
                    handle: Some(handle),
                    id,
                    registered,
                });
            }
            Op::Unregister(i) if !callbacks.is_empty() => {
                let n = callbacks.len();
                let cb = &mut callbacks[i.index(n)];
                if let Some(handle) = cb.handle.take() {
                    let expected = model.runs[cb.id] == 0;
                    model.removed[cb.id] = true;
                    prop_assert_eq!(
                        handle.unregister(),
                        expected,
                        "unregister result at step {}",
                        step
                    );
                }
            }
            Op::Downgrade(i) if !handles.is_empty() => {
                let h = &handles[i.index(handles.len())];
                weaks.push(Weak {
                    weak: h.token.downgrade(),
                    node: h.node,
                });
            }
            Op::Upgrade(i) if !weaks.is_empty() => {
                let w = &weaks[i.index(weaks.len())];
                let alive = alive(&handles, &callbacks, &model, w.node);
                let upgraded = w.weak.upgrade();
                prop_assert_eq!(upgraded.is_some(), alive, "upgrade at step {}", step);
                if let Some(token) = upgraded {
                    handles.push(Handle {
                        token,
                        node: w.node,
                    });
                }
            }
            _ => {}
        }

        for h in &handles {
            let expected = &model.reasons[h.node];
            prop_assert_eq!(
                h.token.is_cancelled(),
                expected.is_some(),
                "flag of node {} at step {}",
                h.node,
                step
            );
            prop_assert_eq!(
                &h.token.reason(),
                expected,
                "reason of node {} at step {}",
                h.node,
                step
            );
        }
        for w in &weaks {
            // Resolved exactly when the token is cancelled or has no strong handle left (a dead
            // node's own flag is not compared: once out of the tree no cancelation reaches it).
            let alive = alive(&handles, &callbacks, &model, w.node);
            let released = pin!(w.weak.released())
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready();
            if alive {
                prop_assert_eq!(
                    released,
                    model.reasons[w.node].is_some(),
                    "released() of live node {} at step {}",
                    w.node,
                    step
                );
                prop_assert_eq!(
                    w.weak.is_cancelled(),
                    model.reasons[w.node].is_some(),
                    "weak flag of node {} at step {}",
                    w.node,
                    step
                );
            } else {
                prop_assert!(
                    released,
                    "released() of dead node {} at step {}",
                    w.node,
                    step
                );
            }
        }
        let seen = seen.lock().unwrap();
        for (id, runs) in model.runs.iter().enumerate() {
            prop_assert_eq!(
                seen[id].len(),
                *runs,
                "runs of callback {} at step {}",
                id,
                step
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 512 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operation_sequences_match_the_reference_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
