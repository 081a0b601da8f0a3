//! Where an operation's sources, callbacks and context may go: [`Sendable`] operations to any
//! thread, [`Local`] ones nowhere but the thread (or the single-threaded executor) that runs
//! them. One [`Flavor`] parameter carries the difference through the builder, the context, the
//! run futures and shields, so both forms share all their machinery.

use alloc::boxed::Box;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;

use crate::reason::CancelReason;

use super::progress::Progress;
use super::status::{OperationId, OperationSnapshot};

/// What an operation may hold: the two forms are [`Sendable`] (the default, for
/// [`Operation`](crate::Operation)) and [`Local`] (for [`LocalOperation`](crate::LocalOperation)).
/// Sealed: no other forms exist.
///
/// Code that works with either form takes the flavor as a parameter:
///
/// ```
/// use cancelable::{Flavor, LocalOperation, Operation, OperationContext};
/// use futures_lite::future::block_on;
///
/// fn note<K: Flavor>(cx: &OperationContext<K>, step: u64) {
///     cx.report_progress(step, Some(2), "steps");
/// }
///
/// block_on(Operation::new("shared").run(|cx| async move { Ok(note(&cx, 1)) })).unwrap();
/// block_on(LocalOperation::new("local").run(|cx| async move { Ok(note(&cx, 2)) })).unwrap();
/// ```
pub trait Flavor: sealed::Sealed {}

/// The default flavor: sources, callbacks and the context are `Send` (callbacks also `Sync`)
/// and `'static`, so an [`Operation`](crate::Operation) and its context may move between
/// threads, and it may be listed in a [`Registry`](crate::Registry) (with `std`).
///
/// ```
/// fn assert_send<T: Send>(_: &T) {}
/// let run = cancelable::Operation::new("t").run(|cx| async move { Ok(cx) });
/// assert_send(&run);
/// ```
#[derive(Debug)]
pub enum Sendable {}

/// The flavor of [`LocalOperation`](crate::LocalOperation): sources, callbacks and the body
/// need be neither `Send` nor `'static`, only valid for `'a`; the context and the run future
/// then stay on the thread that runs them, which the compiler enforces (they are not `Send`).
///
/// ```
/// use cancelable::LocalOperation;
/// use std::rc::Rc;
///
/// let calls = Rc::new(std::cell::Cell::new(0));
/// let seen = calls.clone();
/// let run = LocalOperation::new("t")
///     .on_progress(move |_, _| seen.set(seen.get() + 1))
///     .run(|cx| async move { Ok(cx.report_progress(1, None, "")) });
/// futures_lite::future::block_on(run).unwrap();
/// assert_eq!(calls.get(), 1);
/// ```
///
/// The compiler keeps a local operation on its thread:
///
/// ```compile_fail
/// let run = cancelable::LocalOperation::new("t").run(|_| async { Ok(()) });
/// std::thread::spawn(move || futures_lite::future::block_on(run)); // not `Send`
/// ```
#[derive(Debug)]
pub struct Local<'a>(PhantomData<&'a ()>);

impl Flavor for Sendable {}
impl Flavor for Local<'_> {}

pub(crate) type BoxedSource<K> = Pin<Box<<K as sealed::Sealed>::Source>>;
pub(crate) type ProgressFn<K> = Box<<K as sealed::Sealed>::OnProgress>;
pub(crate) type StatusFn<K> = Box<<K as sealed::Sealed>::OnStatus>;

pub(crate) mod sealed {
    use super::*;
    #[cfg(feature = "std")]
    use crate::operation::{OperationContext, Shared, current::Entry};
    #[cfg(feature = "std")]
    use crate::sync::Arc;
    #[cfg(feature = "std")]
    use crate::token::CancellationToken;

    /// The types each flavor keeps its parts as, and what differs in how it runs.
    pub trait Sealed: Sized {
        /// A `cancel_on` source, boxed: a future yielding the reason to cancel with.
        type Source: ?Sized + Future<Output = CancelReason>;
        /// A progress callback.
        type OnProgress: ?Sized + Fn(&OperationId, &Progress);
        /// A status callback.
        type OnStatus: ?Sized + Fn(&OperationSnapshot);

        /// What `current()`'s stack records while a body or shield of `op` (running under
        /// `token`) is polled.
        #[cfg(feature = "std")]
        fn stack_entry(op: &Arc<Shared<Self>>, token: &CancellationToken) -> Entry;

        /// Lists a new operation in the registry it was built with.
        #[cfg(feature = "std")]
        fn register(op: &Arc<Shared<Self>>);
    }

    impl Sealed for Sendable {
        type Source = dyn Future<Output = CancelReason> + Send;
        type OnProgress = dyn Fn(&OperationId, &Progress) + Send + Sync;
        type OnStatus = dyn Fn(&OperationSnapshot) + Send + Sync;

        #[cfg(feature = "std")]
        #[inline]
        fn stack_entry(op: &Arc<Shared<Self>>, token: &CancellationToken) -> Entry {
            Entry::Sendable(OperationContext {
                shared: op.clone(),
                token: token.clone(),
            })
        }

        #[cfg(feature = "std")]
        fn register(op: &Arc<Shared<Self>>) {
            if let Some(registry) = &op.registry {
                registry.insert(op);
            }
        }
    }

    impl<'a> Sealed for Local<'a> {
        type Source = dyn Future<Output = CancelReason> + 'a;
        type OnProgress = dyn Fn(&OperationId, &Progress) + 'a;
        type OnStatus = dyn Fn(&OperationSnapshot) + 'a;

        #[cfg(feature = "std")]
        #[inline]
        fn stack_entry(op: &Arc<Shared<Self>>, token: &CancellationToken) -> Entry {
            Entry::Local {
                op: Arc::as_ptr(op).cast(),
                main: *token == op.token,
                id: op.id.clone(),
                token: token.clone(),
            }
        }

        #[cfg(feature = "std")]
        fn register(_: &Arc<Shared<Self>>) {}
    }
}
