//! The glue between hyper's runtime traits and smol's: [`FuturesIo`] lets hyper drive a
//! futures-io stream (smol's `TcpStream`), [`HyperIo`] lets futures-io code (async-tungstenite)
//! use a hyper stream (an [`Upgraded`](hyper::upgrade::Upgraded) connection), [`SmolTimer`]
//! (async-io's timers) and [`CoarseTimer`] (one shared ticker thread) give hyper a timer for
//! its header read timeout, and
//! [`SmolExecutor`] runs the tasks hyper spawns (one per HTTP/2 stream) on smol. They are
//! for running hyper yourself around [`Server::layer`](crate::Server::layer);
//! [`Server::serve`](crate::Server::serve) has its own transport, which also watches the peer
//! and bounds each phase of a connection (see the [`server`](crate::server) docs).
//!
//! Written here rather than taken from smol-hyper: it is one page, the crate is
//! `#![forbid(unsafe_code)]` (smol-hyper fills hyper's read buffer with `unsafe`; we copy through a
//! small per-connection scratch buffer instead, a `memcpy` of bytes that just came off a
//! syscall), and smol-hyper has had no release since 2023.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncRead, AsyncWrite};

/// How much [`FuturesIo`] reads per call at most (hyper's own read buffer starts at 8 KiB).
const SCRATCH: usize = 8 * 1024;

/// A futures-io stream (`AsyncRead + AsyncWrite`, e.g. `smol::net::TcpStream`) as a hyper
/// [`Read`](hyper::rt::Read) + [`Write`](hyper::rt::Write) transport.
///
/// ```
/// use cancelable_http::io::FuturesIo;
///
/// smol::block_on(async {
///     let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
///     let client = smol::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
///     let io = FuturesIo::new(client); // ready for hyper::server::conn::http1::Builder::serve_connection
///     let _tcp: &smol::net::TcpStream = io.get_ref();
/// });
/// ```
#[derive(Debug)]
pub struct FuturesIo<T> {
    inner: T,
    /// Allocated on the first read: hyper's cursor can only be filled safely by copying.
    scratch: Vec<u8>,
}

impl<T> FuturesIo<T> {
    /// Wraps `inner`.
    ///
    /// ```
    /// let io = cancelable_http::io::FuturesIo::new(futures_lite::io::Cursor::new(vec![1u8]));
    /// assert_eq!(io.into_inner().into_inner(), [1]);
    /// ```
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            scratch: Vec::new(),
        }
    }

    /// The wrapped stream.
    ///
    /// ```
    /// let io = cancelable_http::io::FuturesIo::new(futures_lite::io::Cursor::new([7u8]));
    /// assert_eq!(io.get_ref().get_ref(), &[7]);
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps the stream.
    ///
    /// ```
    /// let io = cancelable_http::io::FuturesIo::new(5u8);
    /// assert_eq!(io.into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for FuturesIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.scratch.is_empty() {
            this.scratch = vec![0; SCRATCH];
        }
        let want = buf.remaining().min(this.scratch.len());
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.scratch[..want]))?;
        buf.put_slice(&this.scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for FuturesIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A hyper transport (`hyper::rt::Read + Write`, e.g. an upgraded connection) as a futures-io
/// `AsyncRead + AsyncWrite` stream, for libraries such as async-tungstenite.
///
/// ```
/// use cancelable_http::io::{FuturesIo, HyperIo};
/// use futures_lite::AsyncReadExt;
///
/// smol::block_on(async {
///     // Round trip: futures-io -> hyper -> futures-io.
///     let mut io = HyperIo::new(FuturesIo::new(futures_lite::io::Cursor::new(b"hello".to_vec())));
///     let mut text = String::new();
///     io.read_to_string(&mut text).await.unwrap();
///     assert_eq!(text, "hello");
/// });
/// ```
#[derive(Debug)]
pub struct HyperIo<T> {
    inner: T,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    ///
    /// ```
    /// let io = cancelable_http::io::HyperIo::new(3u8);
    /// assert_eq!(io.into_inner(), 3);
    /// ```
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    /// Unwraps the transport.
    ///
    /// ```
    /// assert_eq!(cancelable_http::io::HyperIo::new('x').into_inner(), 'x');
    /// ```
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: hyper::rt::Read + Unpin> AsyncRead for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = hyper::rt::ReadBuf::new(buf);
        ready!(Pin::new(&mut self.get_mut().inner).poll_read(cx, read.unfilled()))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl<T: hyper::rt::Write + Unpin> AsyncWrite for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// smol's global executor as hyper's [`Executor`](hyper::rt::Executor): what hyper's HTTP/2
/// server (`hyper::server::conn::http2::Builder::new`) needs to run each stream as a task.
/// The tasks are detached: they end with their stream.
///
/// ```
/// use hyper::rt::Executor as _;
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// cancelable_http::io::SmolExecutor.execute(async move { tx.send("ran").unwrap() });
/// assert_eq!(rx.recv().unwrap(), "ran");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolExecutor;

impl<F> hyper::rt::Executor<F> for SmolExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        smol::spawn(fut).detach();
    }
}

/// async-io's timers (the ones smol uses) as hyper's [`Timer`](hyper::rt::Timer), so hyper's
/// header read timeout works without tokio.
///
/// ```
/// use std::time::Duration;
/// use hyper::rt::Timer as _;
///
/// smol::block_on(cancelable_http::io::SmolTimer.sleep(Duration::from_millis(1)));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolTimer;

impl hyper::rt::Timer for SmolTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SmolSleep(smol::Timer::after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SmolSleep(smol::Timer::at(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<SmolSleep>() {
            Some(mut ours) => ours.0.set_at(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// One of [`SmolTimer`]'s sleeps.
struct SmolSleep(smol::Timer);

impl Future for SmolSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl hyper::rt::Sleep for SmolSleep {}

/// A coarse hyper [`Timer`](hyper::rt::Timer) for header read timeouts, shared by every
/// connection of a server: one ticker for all of them, instead of one timer per connection.
/// [`Server::serve`](crate::Server::serve) keeps its connections' deadlines on one too.
///
/// Why: hyper makes a new sleep for each request head. With [`SmolTimer`] each is an async-io
/// timer, registered with the reactor (and the reactor woken) when first polled, and async-io's
/// reactor then pays for every registered timer on each of its turns (a lock, a clock read and
/// a map split that allocates), which with small requests is a visible share of their cost.
/// Here a sleep is an entry in a shared table (a lock, an insert, a remove), and a ticker
/// thread, not the reactor, wakes the entries whose deadline has passed, every `resolution`: a
/// deadline fires up to `resolution` late, which a header read timeout does not mind. The
/// ticker holds the table weakly and ends within one tick after the last sleep is gone (or the
/// last `CoarseTimer` clone); the next sleep starts a new one.
///
/// ```
/// use std::time::{Duration, Instant};
/// use hyper::rt::Timer as _;
///
/// let timer = cancelable_http::io::CoarseTimer::new(Duration::from_millis(5));
/// let start = Instant::now();
/// smol::block_on(timer.sleep(Duration::from_millis(20)));
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// ```
#[derive(Clone, Debug)]
pub struct CoarseTimer {
    table: Arc<Table>,
}

#[derive(Debug)]
struct Table {
    resolution: Duration,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    next: u64,
    sleeping: std::collections::HashMap<u64, (Instant, std::task::Waker)>,
    ticking: bool,
}

impl CoarseTimer {
    /// A timer whose sleeps end at most `resolution` after their deadline (at least 1 ms).
    ///
    /// ```
    /// let _timer = cancelable_http::io::CoarseTimer::new(std::time::Duration::from_millis(100));
    /// ```
    pub fn new(resolution: Duration) -> Self {
        Self {
            table: Arc::new(Table {
                resolution: resolution.max(Duration::from_millis(1)),
                inner: Mutex::new(Entries::default()),
            }),
        }
    }
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes the sleeps whose deadline passed, every `resolution`, while any sleep is registered:
/// on a thread of its own, so that the reactor of the connections has no timer to look after
/// (see [`CoarseTimer`]), or, where no thread can be started, as a task on smol's executor.
fn start_ticker(table: &Arc<Table>) {
    let resolution = table.resolution;
    let weak = Arc::downgrade(table);
    let on_thread = weak.clone();
    let started = std::thread::Builder::new()
        .name("cancelable-http-timer".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(resolution);
                if !tick(&on_thread) {
                    return;
                }
            }
        });
    if started.is_err() {
        smol::spawn(async move {
            loop {
                smol::Timer::after(resolution).await;
                if !tick(&weak) {
                    return;
                }
            }
        })
        .detach();
    }
}

/// One tick: wakes the sleeps that are due. `false` when the ticker should end (no sleep left,
/// or the timer is gone).
fn tick(table: &std::sync::Weak<Table>) -> bool {
    let Some(table) = table.upgrade() else {
        return false;
    };
    let now = Instant::now();
    let mut entries = table.lock();
    if entries.sleeping.is_empty() {
        entries.ticking = false; // the next registration starts a new ticker
        return false;
    }
    for (deadline, waker) in entries.sleeping.values() {
        if *deadline <= now {
            waker.wake_by_ref();
        }
    }
    true
}

impl CoarseTimer {
    /// A sleep until `deadline`, unboxed, for the server's own deadlines.
    pub(crate) fn sleep_at(&self, deadline: Instant) -> CoarseSleep {
        CoarseSleep {
            deadline,
            table: self.table.clone(),
            id: None,
        }
    }
}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_at(deadline))
    }
}

/// One of [`CoarseTimer`]'s sleeps: registered in the table while pending.
pub(crate) struct CoarseSleep {
    deadline: Instant,
    table: Arc<Table>,
    id: Option<u64>,
}

impl CoarseSleep {
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if Instant::now() >= this.deadline {
            if let Some(id) = this.id.take() {
                this.table.lock().sleeping.remove(&id);
            }
            return Poll::Ready(());
        }
        let mut entries = this.table.lock();
        match this.id {
            Some(id) => {
                if let Some((_, waker)) = entries.sleeping.get_mut(&id) {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                }
            }
            None => {
                let id = entries.next;
                entries.next += 1;
                entries
                    .sleeping
                    .insert(id, (this.deadline, cx.waker().clone()));
                this.id = Some(id);
            }
        }
        let start = !std::mem::replace(&mut entries.ticking, true);
        drop(entries);
        if start {
            start_ticker(&this.table);
        }
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.table.lock().sleeping.remove(&id);
        }
    }
}

impl hyper::rt::Sleep for CoarseSleep {}
