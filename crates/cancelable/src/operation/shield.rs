//! [`Shield`]: a region of a body that the operation's cancelation waits for.
//!
//! How the body stops at the shield's end: while a shield is being polled the run future does
//! not drop the body (the `shield_depth` count). When the shielded future completes and the
//! operation is cancelled by then, the shield does not return its output; it stays pending, and
//! the run future, which polls the body, sees the cancelation without a shield and drops the body
//! in that same poll. So the statement after the `.await` never runs, and no wake-up is needed.
//!
//! A shield parks only where that drop is sure to come:
//! * when it is polled inside its operation's run future (otherwise nothing would ever drop it),
//! * when it was opened from the operation's own context, not from a shield's,
//! * and when it is not polled inside another shield of the same operation: nested shields end
//!   innermost first, so an inner one returns to the outer one, which parks at its own end. An
//!   inner shield that parked would keep the outer one, and so the body, running forever.
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::sync::Ordering;

use super::context::OperationContext;
use super::flavor::{Flavor, Sendable};

pin_project! {
    /// The future of [`OperationContext::shield`] and [`OperationContext::shield_with`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Shield<F, K: Flavor = Sendable> {
        #[pin]
        future: Option<F>,
        shielded: OperationContext<K>,
        guards_body: bool,
        entered: bool,
        parked: bool,
    }

    impl<F, K: Flavor> PinnedDrop for Shield<F, K> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.entered {
                this.shielded.shared.shield_depth.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl<F: Future, K: Flavor> Shield<F, K> {
    pub(crate) fn new(future: F, shielded: OperationContext<K>, guards_body: bool) -> Self {
        Self {
            future: Some(future),
            shielded,
            guards_body,
            entered: false,
            parked: false,
        }
    }

    /// The context the shielded code runs under (the shield's own token).
    ///
    /// ```
    /// use cancelable::Operation;
    /// futures_lite::future::block_on(Operation::new("t").run(|cx| async move {
    ///     let shield = cx.shield(async {});
    ///     assert_ne!(shield.context().token(), cx.token());
    ///     assert_eq!(shield.context().id(), cx.id());
    ///     shield.await;
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn context(&self) -> &OperationContext<K> {
        &self.shielded
    }
}

impl<F: Future, K: Flavor> Future for Shield<F, K> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if *this.parked {
            return Poll::Pending;
        }
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            panic!("`Shield` polled after completion");
        };
        let shared = &this.shielded.shared;
        if !*this.entered {
            *this.entered = true;
            shared.shield_depth.fetch_add(1, Ordering::AcqRel);
        }
        let output = {
            #[cfg(feature = "std")]
            let _current = super::current::enter(this.shielded);
            #[cfg(not(feature = "std"))]
            let _polling = super::context::Polling::enter(&shared.shield_polls);
            match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(output) => output,
            }
        };
        this.future.set(None);
        *this.entered = false;
        shared.shield_depth.fetch_sub(1, Ordering::AcqRel);
        if *this.guards_body && shared.token.is_cancelled() && ends_the_body_here(this.shielded) {
            *this.parked = true;
            return Poll::Pending;
        }
        Poll::Ready(output)
    }
}

/// `true` if the shield that just ended was polled by its operation's run future (through the
/// body) and not inside another shield of the same operation.
#[cfg(feature = "std")]
fn ends_the_body_here<K: Flavor>(cx: &OperationContext<K>) -> bool {
    super::current::polled_in_body_outside_shields(&cx.shared)
}

/// Without `std` there is no per-thread stack: the counts of body and shield polls in progress
/// answer it, exactly on one thread (several threads polling one operation's body and a shield
/// of it at the same moment can make a shield return instead of parking; the body then stops at
/// its next poll).
#[cfg(not(feature = "std"))]
fn ends_the_body_here<K: Flavor>(cx: &OperationContext<K>) -> bool {
    cx.shared.body_polls.load(Ordering::Acquire) > 0
        && cx.shared.shield_polls.load(Ordering::Acquire) == 0
}

impl<F, K: Flavor> fmt::Debug for Shield<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield")
            .field("operation", self.shielded.id())
            .field("running", &self.entered)
            .field("finished", &(self.future.is_none()))
            .finish()
    }
}
