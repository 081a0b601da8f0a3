//! [`Shield`]: a region of a body that the operation's cancelation waits for.
//!
//! How the body stops at the shield's end: while a shield is being polled the run future does
//! not drop the body (the `shield_depth` count). When the shielded future completes and the
//! operation is cancelled by then, the shield does not return its output; it stays pending, and
//! the run future, which polls the body, sees the cancelation without a shield and drops the body
//! in that same poll. So the statement after the `.await` never runs, and no wake-up is needed.
//! A shield parks only when it is polled inside its operation's run future (otherwise nothing
//! would ever drop it) and only when opened from the operation's own context (a shield nested in
//! a shield returns normally to the outer shield, which then decides).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::sync::Ordering;

use super::context::OperationContext;

pin_project! {
    /// The future of [`OperationContext::shield`] and [`OperationContext::shield_with`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Shield<F> {
        #[pin]
        future: Option<F>,
        shielded: OperationContext,
        guards_body: bool,
        entered: bool,
        parked: bool,
    }

    impl<F> PinnedDrop for Shield<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.entered {
                this.shielded.shared.shield_depth.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl<F: Future> Shield<F> {
    pub(crate) fn new(future: F, shielded: OperationContext, guards_body: bool) -> Self {
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
    pub fn context(&self) -> &OperationContext {
        &self.shielded
    }
}

impl<F: Future> Future for Shield<F> {
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
            match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(output) => output,
            }
        };
        this.future.set(None);
        *this.entered = false;
        shared.shield_depth.fetch_sub(1, Ordering::AcqRel);
        if *this.guards_body && shared.token.is_cancelled() && polled_by_run(this.shielded) {
            *this.parked = true;
            return Poll::Pending;
        }
        Poll::Ready(output)
    }
}

#[cfg(feature = "std")]
fn polled_by_run(cx: &OperationContext) -> bool {
    super::current::is_running_body(&cx.shared)
}

#[cfg(not(feature = "std"))]
fn polled_by_run(cx: &OperationContext) -> bool {
    cx.shared.body_polls.load(Ordering::Acquire) > 0
}

impl<F> fmt::Debug for Shield<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield")
            .field("operation", self.shielded.id())
            .field("running", &self.entered)
            .field("finished", &(self.future.is_none()))
            .finish()
    }
}
