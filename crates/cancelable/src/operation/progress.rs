//! Progress reports: [`Progress`] and the [`ProgressStream`] helper.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::ext::{StreamExt, TakeUntilCancelled};

use super::context::OperationContext;
use super::flavor::{Flavor, Sendable};

/// One progress report: how much is done, out of how much if known, a message, and metadata
/// (a few key/value pairs: the file being read, the latest item).
///
/// ```
/// use cancelable::Progress;
///
/// let p = Progress::new(3, Some(12), "rows");
/// assert_eq!(p.to_string(), "3/12 rows (25%)");
/// assert_eq!(p.fraction(), Some(0.25));
/// assert_eq!(Progress::new(7, None, "").to_string(), "7");
///
/// let p = Progress::new(3, Some(12), "rows").with_metadata("file", "b.csv");
/// assert_eq!(p.metadata["file"], "b.csv");
/// assert_eq!(p.to_string(), "3/12 rows (25%) [file=b.csv]");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Progress {
    /// Units of work done so far.
    pub done: u64,
    /// Units of work in all, when known.
    pub total: Option<u64>,
    /// What the units are, or what is happening (`"rows"`, `"flushing"`).
    pub message: Cow<'static, str>,
    /// Details of this report, by key (empty unless set: an empty map allocates nothing).
    /// With `serde` it is left out of the JSON when empty.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "BTreeMap::is_empty")
    )]
    pub metadata: BTreeMap<String, String>,
}

impl Progress {
    /// A report of `done` out of `total` with `message` (a `&'static str` costs no allocation).
    ///
    /// ```
    /// let p = cancelable::Progress::new(1, None, format!("file {}", 1));
    /// assert_eq!(p.message, "file 1");
    /// ```
    pub fn new(done: u64, total: Option<u64>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            done,
            total,
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a metadata pair (a second value for a key replaces the first).
    ///
    /// ```
    /// use cancelable::Progress;
    /// let p = Progress::new(1, None, "files").with_metadata("file", "a.txt").with_metadata("bytes", "512");
    /// assert_eq!(p.metadata.len(), 2);
    /// ```
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// `done / total`, when the total is known and not zero.
    ///
    /// ```
    /// assert_eq!(cancelable::Progress::new(1, Some(4), "").fraction(), Some(0.25));
    /// assert_eq!(cancelable::Progress::new(1, None, "").fraction(), None);
    /// ```
    pub fn fraction(&self) -> Option<f64> {
        match self.total {
            Some(total) if total > 0 => Some(self.done as f64 / total as f64),
            _ => None,
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.done)?;
        if let Some(total) = self.total {
            write!(f, "/{total}")?;
        }
        if !self.message.is_empty() {
            write!(f, " {}", self.message)?;
        }
        if let Some(total) = self.total.filter(|&total| total > 0) {
            write!(f, " ({}%)", self.done.saturating_mul(100) / total)?;
        }
        for (i, (key, value)) in self.metadata.iter().enumerate() {
            let open = if i == 0 { " [" } else { ", " };
            write!(f, "{open}{key}={value}")?;
        }
        if !self.metadata.is_empty() {
            f.write_str("]")?;
        }
        Ok(())
    }
}

pin_project! {
    /// The stream of [`OperationContext::progress_stream`]: the items of the inner stream,
    /// reporting progress every N of them, ending when the context's token is cancelled.
    #[must_use = "streams do nothing unless polled"]
    pub struct ProgressStream<S, K: Flavor = Sendable> {
        #[pin]
        inner: TakeUntilCancelled<S>,
        cx: OperationContext<K>,
        every: u64,
        count: u64,
        reported: u64,
        total: Option<u64>,
        message: Cow<'static, str>,
    }
}

impl<S: Stream, K: Flavor> ProgressStream<S, K> {
    pub(crate) fn new(stream: S, cx: &OperationContext<K>, every: u64) -> Self {
        let total = match stream.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(lower as u64),
            _ => None,
        };
        Self {
            inner: stream.take_until_cancelled(cx.token()),
            cx: cx.clone(),
            every: every.max(1),
            count: 0,
            reported: 0,
            total,
            message: Cow::Borrowed("items"),
        }
    }

    /// Uses `message` instead of `"items"` in the reports.
    ///
    /// ```
    /// use cancelable::Operation;
    /// use futures_lite::{StreamExt, future, stream};
    ///
    /// let last = future::block_on(Operation::new("s").run(|cx| async move {
    ///     let mut s = cx.progress_stream(stream::iter(0..4), 2).with_message("lines");
    ///     while s.next().await.is_some() {}
    ///     Ok(cx.snapshot().progress.unwrap().message)
    /// }));
    /// assert_eq!(last.unwrap(), "lines");
    /// ```
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// How many items the stream has yielded so far.
    ///
    /// ```
    /// use cancelable::Operation;
    /// use futures_lite::{StreamExt, future, stream};
    ///
    /// future::block_on(Operation::new("s").run(|cx| async move {
    ///     let mut s = cx.progress_stream(stream::iter(0..3), 10);
    ///     s.next().await;
    ///     assert_eq!(s.seen(), 1);
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn seen(&self) -> u64 {
        self.count
    }
}

impl<S: Stream, K: Flavor> Stream for ProgressStream<S, K> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let item = match this.inner.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        let report = match item {
            Some(_) => {
                *this.count += 1;
                *this.count % *this.every == 0
            }
            // The last report says how far the stream got, whether it ran out or was cancelled.
            None => *this.count != *this.reported,
        };
        if report {
            *this.reported = *this.count;
            this.cx
                .report_progress(*this.count, *this.total, this.message.clone());
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S: Stream, K: Flavor> FusedStream for ProgressStream<S, K> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<S, K: Flavor> fmt::Debug for ProgressStream<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressStream")
            .field("operation", self.cx.id())
            .field("count", &self.count)
            .field("every", &self.every)
            .finish()
    }
}
