//! [`Jobs`]: background work that outlives the request that started it. Each job runs as an
//! [`Operation`] under its own token, a child of the **server** token (not of the request: the
//! client may leave, the job goes on; shutdown still stops it), with an unguessable id (128
//! random bits, 32 hex digits), status and progress in a registry, a bounded history of
//! finished jobs and a limit on how many run at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::time::Duration;

use cancelable::{
    CancelReason, CancellationToken, Cancelled, Operation, OperationContext, OperationFilter,
    OperationSnapshot, OperationStatus,
};
use hyper::StatusCode;
use parking_lot_free::Mutex;

use crate::response::HttpError;
use crate::server::{ProgressInfo, State};

mod parking_lot_free {
    //! `std`'s mutex, poison ignored (a job entry map cannot be left half-updated).
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
    impl<T> std::fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Mutex")
        }
    }
}

/// How long [`Jobs::cancel`] waits for a cancelled job to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// A job as `GET /jobs` lists it: `{"id", "name", "status", "progress": {"done", "total"},
/// "reason"}`. Statuses are `pending`, `running`, `completed`, `cancelled`, `failed`; reasons are
/// the [`CancelKind`](cancelable::CancelKind) in snake case (`manual`, `timeout`, ...).
///
/// ```
/// # use cancelable_http::{Jobs, Server};
/// smol::block_on(async {
///     let server = Server::new(Default::default());
///     let jobs = Jobs::new(&server, 4);
///     let id = jobs.start("import", Some(3), |cx| async move {
///         cx.report_progress(3, Some(3), "rows");
///         Ok(())
///     }).unwrap();
///     let info = jobs.get(&id).unwrap();
///     assert_eq!(info.id, id);
///     let json = serde_json::to_value(&info).unwrap();
///     assert!(json["progress"]["done"].is_u64());
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's id (32 hex digits).
    pub id: String,
    /// The name given to [`Jobs::start`].
    pub name: String,
    /// `pending`, `running`, `completed`, `cancelled` or `failed`.
    pub status: &'static str,
    /// Progress reported so far (`done` = `total` once completed, if the job reported it).
    pub progress: ProgressInfo,
    /// Why it was cancelled: `manual` (from [`Jobs::cancel`]), `shutdown`, ...
    pub reason: Option<&'static str>,
}

impl JobInfo {
    fn of(snapshot: &OperationSnapshot) -> Self {
        JobInfo {
            id: snapshot.id.as_str().to_owned(),
            name: snapshot.name.clone(),
            status: snapshot.status.as_str(),
            progress: ProgressInfo::of(snapshot),
            reason: snapshot.reason.as_ref().map(|r| r.kind().as_str()),
        }
    }
}

/// Why [`Jobs::start`] refused a job.
///
/// ```
/// use cancelable_http::{JobError, HttpError};
/// let err = HttpError::from(JobError::LimitReached { limit: 8 });
/// assert_eq!(err.status(), 429);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// `limit` jobs are running already (→ `429`).
    LimitReached {
        /// The concurrency limit.
        limit: usize,
    },
    /// The server is shutting down (→ `503`).
    ShuttingDown,
    /// The system's random number generator failed (→ `500`).
    Random,
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::LimitReached { limit } => write!(f, "too many jobs (limit {limit})"),
            JobError::ShuttingDown => f.write_str("shutting down"),
            JobError::Random => f.write_str("cannot generate a job id"),
        }
    }
}

impl std::error::Error for JobError {}

impl From<JobError> for HttpError {
    fn from(err: JobError) -> Self {
        let status = match err {
            JobError::LimitReached { .. } => StatusCode::TOO_MANY_REQUESTS,
            JobError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            JobError::Random => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError::new(status, err.to_string())
    }
}

/// What [`Jobs::cancel`] did.
///
/// ```
/// use cancelable_http::{CancelOutcome, HttpError};
/// assert_eq!(CancelOutcome::AlreadyFinished.into_result().unwrap_err().status(), 409);
/// assert_eq!(CancelOutcome::NotFound.into_result().unwrap_err().status(), 404);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// This call cancelled the job (reason `manual`), and it has stopped.
    Cancelled,
    /// The job had finished (or been cancelled) already (→ `409`).
    AlreadyFinished,
    /// No such job, or it left the history (→ `404`).
    NotFound,
}

impl CancelOutcome {
    /// `Ok(())` for `Cancelled`, else the HTTP error to answer with: `409` when the job had
    /// already finished, `404` when no job has that id.
    ///
    /// ```
    /// assert!(cancelable_http::CancelOutcome::Cancelled.into_result().is_ok());
    /// ```
    pub fn into_result(self) -> Result<(), HttpError> {
        match self {
            CancelOutcome::Cancelled => Ok(()),
            CancelOutcome::AlreadyFinished => {
                Err(HttpError::new(StatusCode::CONFLICT, "job already finished"))
            }
            CancelOutcome::NotFound => Err(HttpError::not_found("no such job")),
        }
    }
}

struct Live {
    token: CancellationToken,
    /// Cancelled by the job's task once it ended (its final snapshot is in the history).
    done: CancellationToken,
}

struct Inner {
    state: Arc<State>,
    limit: usize,
    live: Mutex<HashMap<String, Live>>,
}

/// The jobs manager of one [`Server`](crate::Server). `Clone` shares it.
///
/// ```
/// use std::time::Duration;
/// use cancelable_http::{CancelOutcome, Jobs, Server};
///
/// smol::block_on(async {
///     let server = Server::new(Default::default());
///     let jobs = Jobs::new(&server, 8);
///     let id = jobs.start("sleepy", Some(10), |cx| async move {
///         for step in 1..=10 {
///             smol::Timer::after(Duration::from_millis(50)).await;
///             cx.report_progress(step, Some(10), "steps");
///         }
///         Ok(())
///     })?;
///     assert_eq!(jobs.cancel(&id).await, CancelOutcome::Cancelled);
///     let info = jobs.get(&id).unwrap();
///     assert_eq!((info.status, info.reason), ("cancelled", Some("manual")));
///     assert_eq!(jobs.cancel(&id).await, CancelOutcome::AlreadyFinished);
///     Ok::<_, cancelable_http::JobError>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("limit", &self.inner.limit)
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

/// 128 random bits as 32 lowercase hex digits.
fn random_id() -> Result<String, JobError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| JobError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Jobs {
    /// A manager for `server`'s jobs, running at most `limit` at once (at least 1).
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// let jobs = cancelable_http::Jobs::new(&server, 16);
    /// assert_eq!(jobs.active(), 0);
    /// ```
    pub fn new(server: &crate::Server, limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: server.state().clone(),
                limit: limit.max(1),
                live: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts `body` as a job called `name` on smol's executor and returns its id. The job's
    /// token ([`OperationContext::token`]) is a child of the server token; its progress starts
    /// at `0 / total`. Shutdown waits for it (it is tracked by the server's tracker).
    ///
    /// Errors: [`JobError::LimitReached`] when `limit` jobs are active,
    /// [`JobError::ShuttingDown`] once the server token is cancelled. A job stops counting
    /// against the limit before its final status shows: once [`get`](Jobs::get) says it ended,
    /// the next `start` has its place.
    ///
    /// ```
    /// # smol::block_on(async {
    /// let server = cancelable_http::Server::new(Default::default());
    /// let jobs = cancelable_http::Jobs::new(&server, 1);
    /// let _first = jobs.start("a", None, |_| std::future::pending()).unwrap();
    /// assert!(jobs.start("b", None, |_| async { Ok(()) }).is_err()); // limit 1
    /// # });
    /// ```
    pub fn start<F, Fut>(&self, name: &str, total: Option<u64>, body: F) -> Result<String, JobError>
    where
        F: FnOnce(OperationContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Cancelled>> + Send + 'static,
    {
        let inner = &self.inner;
        let state = &inner.state;
        if state.token.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        // Before the count is taken: a failure to make an id then has nothing to give back.
        let id = random_id()?;
        let active = &state.stats.active_jobs;
        let mut now = active.load(Acquire);
        loop {
            if now >= inner.limit {
                return Err(JobError::LimitReached { limit: inner.limit });
            }
            match active.compare_exchange_weak(now, now + 1, AcqRel, Acquire) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        // The job's live entry, inserted below before the body can run, leaves with the slot.
        let slot = Slot {
            inner: inner.clone(),
            id: id.clone(),
        };
        // The slot goes with the body, which the operation drops before it records the final
        // status: whoever sees the job finished sees its slot free and its entry gone.
        let run = Operation::new(name.to_owned())
            .id(id.as_str())
            .parent(&state.token)
            .metadata("kind", "job")
            .register(&state.jobs)
            .run(move |cx| async move {
                let _slot = slot;
                body(cx).await
            });
        let cx = run.context().clone();
        cx.report_progress(0, total, "started");
        let done = CancellationToken::new();
        inner.live.lock().insert(
            id.clone(),
            Live {
                token: cx.token().clone(),
                done: done.clone(),
            },
        );
        let task = state.tracker.track_future(async move {
            let _ = run.await;
            done.cancel();
        });
        state.spawn(task);
        Ok(id)
    }

    /// Jobs pending or running.
    ///
    /// ```
    /// assert_eq!(cancelable_http::Jobs::new(&cancelable_http::Server::new(Default::default()), 1).active(), 0);
    /// ```
    pub fn active(&self) -> usize {
        self.inner.state.stats.active_jobs.load(Relaxed)
    }

    /// Live jobs in the order they started, then finished ones in the history, oldest first.
    ///
    /// ```
    /// let jobs = cancelable_http::Jobs::new(&cancelable_http::Server::new(Default::default()), 1);
    /// assert!(jobs.list().is_empty());
    /// ```
    pub fn list(&self) -> Vec<JobInfo> {
        self.inner
            .state
            .jobs
            .list(&OperationFilter::new())
            .iter()
            .map(JobInfo::of)
            .collect()
    }

    /// One job, live or in the history; `None` if unknown.
    ///
    /// ```
    /// let jobs = cancelable_http::Jobs::new(&cancelable_http::Server::new(Default::default()), 1);
    /// assert!(jobs.get("0123").is_none());
    /// ```
    pub fn get(&self, id: &str) -> Option<JobInfo> {
        self.inner.state.jobs.get(id).map(|snap| JobInfo::of(&snap))
    }

    /// Cancels a live job with reason `manual` and waits (up to 2 s) until it has stopped, so
    /// a `GET` right after shows it `cancelled`. A job whose body returned as the cancel came
    /// keeps `completed`, and the answer is [`CancelOutcome::AlreadyFinished`]: the outcome
    /// always agrees with the status the job keeps. See [`CancelOutcome`].
    ///
    /// ```
    /// # smol::block_on(async {
    /// let jobs = cancelable_http::Jobs::new(&cancelable_http::Server::new(Default::default()), 1);
    /// assert_eq!(jobs.cancel("nope").await, cancelable_http::CancelOutcome::NotFound);
    /// # });
    /// ```
    pub async fn cancel(&self, id: &str) -> CancelOutcome {
        let found = self
            .inner
            .live
            .lock()
            .get(id)
            .map(|live| (live.token.clone(), live.done.clone()));
        match found {
            Some((token, done)) => {
                if !token.cancel_with(CancelReason::manual().with_message("cancelled by request")) {
                    return CancelOutcome::AlreadyFinished;
                }
                let _ = cancelable_smol::timeout(CANCEL_WAIT, done.cancelled()).await;
                // A job that completed (or failed) as the cancel came keeps that status: say so.
                let ended_otherwise = self.inner.state.jobs.get(id).is_some_and(|snap| {
                    matches!(
                        snap.status,
                        OperationStatus::Completed | OperationStatus::Failed
                    )
                });
                if ended_otherwise {
                    CancelOutcome::AlreadyFinished
                } else {
                    CancelOutcome::Cancelled
                }
            }
            None if self.inner.state.jobs.get(id).is_some() => CancelOutcome::AlreadyFinished,
            None => CancelOutcome::NotFound,
        }
    }
}

/// One unit of the concurrency limit and the job's live entry, released with the job's body
/// (or with its closure, if the body never ran).
struct Slot {
    inner: Arc<Inner>,
    id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.live.lock().remove(&self.id);
        self.inner.state.stats.active_jobs.fetch_sub(1, Relaxed);
    }
}
