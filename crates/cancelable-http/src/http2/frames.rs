//! What the server follows of an HTTP/2 connection's frames (RFC 9113, section 4.1), read as
//! the bytes pass through the transport, for what hyper does not report:
//!
//! * a GOAWAY carrying an error code: the client declared the connection dead;
//! * a header block left open (HEADERS without END_HEADERS, CONTINUATION still due);
//! * request bodies the client owes: a stream whose body has not ended while the client holds
//!   flow-control credit for it (RFC 9113, section 5.2), so the body bound counts only the
//!   time the client could send and did not, never the time a handler leaves its body unread;
//! * responses the client withholds credit for: a response under way on a stream for which the
//!   client granted the server no flow-control credit (its stream window, or the connection
//!   window, used up), however well it reads every frame the server did send.
//!
//! hyper (through h2) parses and answers every frame; this module keeps no frame, only the
//! 9-byte headers, the first bytes of a payload and the client's SETTINGS entries (read as they
//! pass), and the credit of each open stream: memory bounded by the number of open streams,
//! which hyper bounds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The SETTINGS parameter of the window new streams open with (RFC 9113, section 6.5.2).
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// The flow-control window every connection and stream starts with before SETTINGS
/// (RFC 9113, section 6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;
/// How many payload bytes of a frame are kept: enough for RST_STREAM, GOAWAY's last stream
/// and error code, and WINDOW_UPDATE.
const KEPT: usize = 8;

/// What the splitter hands over.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen<'a> {
    /// A frame: its header and the first bytes of its payload.
    Frame(Frame<'a>),
    /// One parameter of a SETTINGS frame (not an acknowledgement), from a splitter made to
    /// read them.
    Setting { id: u16, value: u32 },
}

/// A frame as the splitter hands it over: its header and the first bytes of its payload.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Frame<'a> {
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
    pub(super) len: usize,
    /// The first `min(len, 8)` bytes of the payload.
    pub(super) start: &'a [u8],
}

impl Frame<'_> {
    /// The big-endian word at `at` in the kept payload bytes, if the payload has it.
    fn word(&self, at: usize) -> Option<u32> {
        let bytes = self.start.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// The credit a WINDOW_UPDATE grants.
    fn increment(&self) -> i64 {
        i64::from(self.word(0).unwrap_or(0) & 0x7fff_ffff)
    }
}

/// Finds the frame boundaries of one direction of a connection in bytes of any split.
#[derive(Debug)]
pub(super) struct Splitter {
    /// Bytes to pass over before the first frame (the client's connection preface).
    skip: usize,
    head: [u8; 9],
    /// Header bytes collected; 9 while in a payload.
    have: usize,
    /// The current frame's payload length, and how much of it went by.
    len: usize,
    pos: usize,
    /// The first payload bytes of the current frame.
    start: [u8; KEPT],
    /// Whether the current frame was handed over.
    handed: bool,
    /// Whether SETTINGS parameters are handed over, and whether the current frame is a
    /// SETTINGS frame whose parameters are read.
    read_settings: bool,
    in_settings: bool,
    /// The bytes of a SETTINGS parameter collected so far (six make one).
    entry: [u8; 6],
    entry_have: usize,
}

impl Splitter {
    /// A splitter that passes over `skip` bytes first, and hands over SETTINGS parameters if
    /// `read_settings`.
    pub(super) fn new(skip: usize, read_settings: bool) -> Self {
        Self {
            skip,
            head: [0; 9],
            have: 0,
            len: 0,
            pos: 0,
            start: [0; KEPT],
            handed: false,
            read_settings,
            in_settings: false,
            entry: [0; 6],
            entry_have: 0,
        }
    }

    /// Feeds the next bytes; `on` gets each frame once, as soon as its header and its first
    /// payload bytes (at most 8) are in, and each SETTINGS parameter as soon as its six bytes
    /// are.
    pub(super) fn feed(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Seen<'_>)) {
        loop {
            if self.skip > 0 {
                if bytes.is_empty() {
                    return;
                }
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.have < 9 {
                if bytes.is_empty() {
                    return;
                }
                let n = (9 - self.have).min(bytes.len());
                self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have < 9 {
                    return;
                }
                let [a, b, c, kind, flags, ..] = self.head;
                self.len = u32::from_be_bytes([0, a, b, c]) as usize;
                self.pos = 0;
                self.handed = false;
                // On stream 0 only; a SETTINGS frame elsewhere is a connection error for hyper.
                self.in_settings = self.read_settings
                    && kind == SETTINGS
                    && flags & ACK == 0
                    && self.head[5..] == [0; 4];
                self.entry_have = 0;
            }
            let kept = self.len.min(KEPT);
            let n = (self.len - self.pos).min(bytes.len());
            let (payload, rest) = bytes.split_at(n);
            if self.pos < kept {
                let k = (kept - self.pos).min(n);
                self.start[self.pos..self.pos + k].copy_from_slice(&payload[..k]);
            }
            if self.in_settings {
                for &byte in payload {
                    self.entry[self.entry_have] = byte;
                    self.entry_have += 1;
                    if self.entry_have == 6 {
                        self.entry_have = 0;
                        let [i0, i1, v0, v1, v2, v3] = self.entry;
                        on(Seen::Setting {
                            id: u16::from_be_bytes([i0, i1]),
                            value: u32::from_be_bytes([v0, v1, v2, v3]),
                        });
                    }
                }
            }
            self.pos += n;
            bytes = rest;
            if !self.handed && self.pos >= kept {
                self.handed = true;
                let [.., kind, flags, s0, s1, s2, s3] = self.head;
                on(Seen::Frame(Frame {
                    kind,
                    flags,
                    stream: u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff,
                    len: self.len,
                    start: &self.start[..kept],
                }));
            }
            if self.pos < self.len {
                return; // the rest of this payload is in later bytes
            }
            self.have = 0;
        }
    }
}

/// One connection as its frames show it: both directions split into frames, and what the
/// client owes.
#[derive(Debug)]
pub(super) struct Watch {
    received: Splitter,
    sent: Splitter,
    client: Client,
}

/// What the frames of one connection tell about its client.
#[derive(Debug)]
pub(super) struct Client {
    /// The window each new stream opens with (the server's SETTINGS_INITIAL_WINDOW_SIZE).
    stream_window: i64,
    /// The client's connection-level credit.
    credit: i64,
    /// Open request bodies: stream id → the client's credit on that stream.
    bodies: HashMap<u32, i64>,
    /// The most open bodies, and the most open responses, followed; more are left to hyper,
    /// which refuses streams past its limit anyway.
    max_streams: usize,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// The client sent a GOAWAY with an error code: it declared the connection dead.
    pub(super) failed: bool,
    /// Since when a header block has been open (HEADERS without END_HEADERS).
    pub(super) header_block: Option<Instant>,
    /// Since when the client has held credit for an open body and sent none of it.
    owing_since: Option<Instant>,
    /// Since when some request body has been open, the body bytes received since, and the
    /// time the client was blocked by flow control meanwhile (which the rate check forgives).
    bodies_since: Option<Instant>,
    body_bytes: u64,
    blocked_since: Option<Instant>,
    blocked: Duration,
    /// The window the client gives each stream for the server's DATA (its
    /// SETTINGS_INITIAL_WINDOW_SIZE): a change moves every open stream's credit with it.
    response_window: i64,
    /// The server's connection-level credit with the client.
    response_credit: i64,
    /// Streams the client opened whose response has not ended: stream id → the server's side.
    responses: HashMap<u32, Response>,
    /// Since when a response under way has had no credit to go on with.
    starved_since: Option<Instant>,
}

/// The server's side of one open stream.
#[derive(Debug, Default)]
struct Response {
    /// The client's grants on this stream less the server's DATA on it: the server's credit
    /// is this plus `response_window`, so a new initial window reaches every stream at once.
    granted: i64,
    /// The response's HEADERS went out, its end not yet.
    under_way: bool,
}

impl Watch {
    /// The watch of a connection whose streams open with `stream_window` bytes of credit; the
    /// client's bytes start with the 24-byte connection preface.
    pub(super) fn new(stream_window: u32, max_streams: usize) -> Self {
        Self {
            received: Splitter::new(24, true),
            sent: Splitter::new(0, false),
            client: Client {
                stream_window: i64::from(stream_window),
                credit: DEFAULT_WINDOW,
                bodies: HashMap::new(),
                max_streams,
                last_stream: 0,
                failed: false,
                header_block: None,
                owing_since: None,
                bodies_since: None,
                body_bytes: 0,
                blocked_since: None,
                blocked: Duration::ZERO,
                response_window: DEFAULT_WINDOW,
                response_credit: DEFAULT_WINDOW,
                responses: HashMap::new(),
                starved_since: None,
            },
        }
    }

    /// Bytes from the client.
    pub(super) fn received(&mut self, bytes: &[u8], now: Instant) {
        let Self {
            received, client, ..
        } = self;
        let mut data = false;
        received.feed(bytes, &mut |seen| match seen {
            Seen::Frame(frame) => data |= client.received(&frame, now),
            Seen::Setting { id, value } => client.setting(id, value),
        });
        client.settle(now, data);
    }

    /// Bytes to the client (as far as the socket took them).
    pub(super) fn sent(&mut self, bytes: &[u8], now: Instant) {
        let Self { sent, client, .. } = self;
        sent.feed(bytes, &mut |seen| {
            if let Seen::Frame(frame) = seen {
                client.sent(&frame);
            }
        });
        client.settle(now, false);
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }
}

impl Client {
    /// A frame from the client; `true` if it carried body bytes of an open request body.
    fn received(&mut self, frame: &Frame<'_>, now: Instant) -> bool {
        let len = i64::try_from(frame.len).unwrap_or(i64::MAX);
        let end_stream = frame.flags & END_STREAM != 0;
        match frame.kind {
            HEADERS => {
                let id = frame.stream;
                if id % 2 == 1 && id > self.last_stream {
                    self.last_stream = id;
                    if !end_stream && self.bodies.len() < self.max_streams {
                        self.bodies.insert(id, self.stream_window);
                    }
                    if self.responses.len() < self.max_streams {
                        self.responses.insert(id, Response::default());
                    }
                } else if end_stream {
                    self.bodies.remove(&id); // trailers end the body
                }
                if frame.flags & END_HEADERS == 0 {
                    self.header_block.get_or_insert(now);
                } else {
                    self.header_block = None;
                }
            }
            CONTINUATION if frame.flags & END_HEADERS != 0 => self.header_block = None,
            DATA => {
                self.credit = self.credit.saturating_sub(len);
                if let Some(credit) = self.bodies.get_mut(&frame.stream) {
                    *credit = credit.saturating_sub(len);
                    self.body_bytes = self.body_bytes.saturating_add(frame.len as u64);
                    if end_stream {
                        self.bodies.remove(&frame.stream);
                    }
                    return true;
                }
            }
            RST_STREAM => {
                self.bodies.remove(&frame.stream);
                self.responses.remove(&frame.stream);
            }
            GOAWAY => self.failed |= frame.word(4).is_some_and(|code| code != 0),
            WINDOW_UPDATE => {
                let grant = frame.increment();
                if frame.stream == 0 {
                    self.response_credit = self.response_credit.saturating_add(grant);
                } else if let Some(response) = self.responses.get_mut(&frame.stream) {
                    response.granted = response.granted.saturating_add(grant);
                }
            }
            _ => {}
        }
        false
    }

    /// A SETTINGS parameter from the client: a new initial window moves the credit of every
    /// open stream by the difference (RFC 9113, section 6.9.2), which the credits, kept
    /// relative to it, do by themselves.
    fn setting(&mut self, id: u16, value: u32) {
        if id == SETTINGS_INITIAL_WINDOW_SIZE {
            self.response_window = i64::from(value);
        }
    }

    /// A frame from the server.
    fn sent(&mut self, frame: &Frame<'_>) {
        let end_stream = frame.flags & END_STREAM != 0;
        match frame.kind {
            DATA => {
                let len = i64::try_from(frame.len).unwrap_or(i64::MAX);
                self.response_credit = self.response_credit.saturating_sub(len);
                if end_stream {
                    self.responses.remove(&frame.stream);
                } else if let Some(response) = self.responses.get_mut(&frame.stream) {
                    response.granted = response.granted.saturating_sub(len);
                }
            }
            HEADERS if end_stream => {
                self.responses.remove(&frame.stream);
            }
            HEADERS => {
                if let Some(response) = self.responses.get_mut(&frame.stream) {
                    response.under_way = true;
                }
            }
            WINDOW_UPDATE => {
                let grant = frame.increment();
                if frame.stream == 0 {
                    self.credit = self.credit.saturating_add(grant);
                } else if let Some(credit) = self.bodies.get_mut(&frame.stream) {
                    *credit = credit.saturating_add(grant);
                }
            }
            RST_STREAM => {
                self.bodies.remove(&frame.stream);
                self.responses.remove(&frame.stream);
            }
            _ => {}
        }
    }

    /// Updates what the client owes after some frames; `data` if body bytes came.
    fn settle(&mut self, now: Instant, data: bool) {
        let window = self.response_window;
        let connection_spent = self.response_credit <= 0;
        let starved = (self.responses.values())
            .any(|r| r.under_way && (connection_spent || window.saturating_add(r.granted) <= 0));
        if !starved {
            self.starved_since = None;
        } else if self.starved_since.is_none() {
            self.starved_since = Some(now);
        }
        if self.bodies.is_empty() {
            self.bodies_since = None;
            self.body_bytes = 0;
            self.blocked_since = None;
            self.blocked = Duration::ZERO;
            self.owing_since = None;
            return;
        }
        self.bodies_since.get_or_insert(now);
        let owes = self.credit > 0 && self.bodies.values().any(|credit| *credit > 0);
        if owes {
            if let Some(since) = self.blocked_since.take() {
                self.blocked += now.saturating_duration_since(since);
            }
            if data || self.owing_since.is_none() {
                self.owing_since = Some(now);
            }
        } else {
            self.owing_since = None;
            self.blocked_since.get_or_insert(now);
        }
    }

    /// Since when a response under way has had no flow-control credit from the client to go
    /// on with (`None` while every response under way has some).
    pub(super) fn starved_since(&self) -> Option<Instant> {
        self.starved_since
    }

    /// When the client's open request bodies are overdue: `timeout` after the last body
    /// bytes while it could send, or once the bodies fell below `min_rate` bytes per second
    /// on average (`0`: no rate check) past a first `timeout`, not counting the time flow
    /// control held the client back. `None` while the client owes nothing.
    pub(super) fn body_deadline(&self, timeout: Duration, min_rate: u64) -> Option<Instant> {
        let silence = self.owing_since?.checked_add(timeout);
        let rate = match (min_rate, self.bodies_since) {
            (0, _) | (_, None) => None,
            (rate, Some(since)) => {
                let credit = Duration::from_millis(self.body_bytes.saturating_mul(1000) / rate);
                since
                    .checked_add(self.blocked)
                    .and_then(|t| t.checked_add(timeout))
                    .and_then(|t| t.checked_add(credit))
            }
        };
        silence.into_iter().chain(rate).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Frame(u8, u8, u32, usize, Vec<u8>),
        Setting(u16, u32),
    }

    fn split(bytes: &[u8], at: &[usize]) -> Vec<Got> {
        let mut splitter = Splitter::new(3, true);
        let mut out = Vec::new();
        let mut from = 0;
        for &to in at.iter().chain(Some(&bytes.len())) {
            splitter.feed(&bytes[from..to], &mut |seen| {
                out.push(match seen {
                    Seen::Frame(f) => {
                        Got::Frame(f.kind, f.flags, f.stream, f.len, f.start.to_vec())
                    }
                    Seen::Setting { id, value } => Got::Setting(id, value),
                })
            });
            from = to;
        }
        out
    }

    fn settings(entries: &[(u16, u32)]) -> Vec<u8> {
        let payload: Vec<u8> = entries
            .iter()
            .flat_map(|&(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
            .collect();
        frame(SETTINGS, 0, 0, &payload)
    }

    #[test]
    fn frames_and_settings_are_found_whatever_the_split() {
        let mut bytes = b"pre".to_vec();
        bytes.extend(frame(HEADERS, END_HEADERS, 1, b"abc"));
        bytes.extend(frame(DATA, END_STREAM, 1, &[7; 100]));
        bytes.extend(settings(&[(1, 4096), (3, 100), (4, 50)]));
        bytes.extend(frame(SETTINGS, ACK, 0, &[]));
        bytes.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 2, 9, 9]));
        bytes.extend(frame(WINDOW_UPDATE, 0, 3, &[]));
        let whole = split(&bytes, &[]);
        assert_eq!(
            whole,
            [
                Got::Frame(HEADERS, END_HEADERS, 1, 3, b"abc".to_vec()),
                Got::Frame(DATA, END_STREAM, 1, 100, vec![7; 8]),
                Got::Setting(1, 4096),
                Got::Setting(3, 100),
                Got::Setting(4, 50),
                Got::Frame(SETTINGS, 0, 0, 18, vec![0, 1, 0, 0, 16, 0, 0, 3]),
                Got::Frame(SETTINGS, ACK, 0, 0, vec![]),
                Got::Frame(GOAWAY, 0, 0, 10, vec![0, 0, 0, 1, 0, 0, 0, 2]),
                Got::Frame(WINDOW_UPDATE, 0, 3, 0, vec![]),
            ]
        );
        let whole = by_kind(whole);
        for i in 0..=bytes.len() {
            assert_eq!(by_kind(split(&bytes, &[i])), whole, "split at {i}");
            for j in i..=bytes.len() {
                let twice = by_kind(split(&bytes, &[i, j]));
                assert_eq!(twice, whole, "split at {i}, {j}");
            }
        }
    }

    /// The frames, then the SETTINGS parameters, each in the order handed over: a frame may
    /// come before or after the parameters of its payload, depending on where the bytes split.
    fn by_kind(got: Vec<Got>) -> (Vec<Got>, Vec<Got>) {
        got.into_iter().partition(|g| matches!(g, Got::Frame(..)))
    }

    fn watch() -> (Watch, Instant) {
        let mut watch = Watch::new(100, 8);
        let now = Instant::now();
        watch.received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", now);
        (watch, now)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn an_open_body_with_credit_is_owed_until_it_ends() {
        let (mut w, t0) = watch();
        w.received(&frame(HEADERS, END_HEADERS, 1, b"h"), t0);
        assert_eq!(w.client().body_deadline(S, 0), Some(t0 + S));
        w.received(&frame(DATA, 0, 1, &[0; 10]), t0 + S / 2);
        assert_eq!(w.client().body_deadline(S, 0), Some(t0 + S / 2 + S));
        w.received(&frame(DATA, END_STREAM, 1, &[0; 10]), t0 + S / 2);
        assert_eq!(w.client().body_deadline(S, 0), None);
    }

    #[test]
    fn a_client_out_of_credit_owes_nothing_until_the_server_grants_more() {
        let (mut w, t0) = watch();
        w.received(&frame(HEADERS, END_HEADERS, 1, b"h"), t0);
        w.received(&frame(DATA, 0, 1, &[0; 100]), t0);
        assert_eq!(
            w.client().body_deadline(S, 1),
            None,
            "the stream window is spent"
        );
        w.sent(
            &frame(WINDOW_UPDATE, 0, 1, &50u32.to_be_bytes()),
            t0 + 10 * S,
        );
        // Silence counts from the grant.
        assert_eq!(w.client().body_deadline(S, 0), Some(t0 + 11 * S));
        // The rate check forgives the ten blocked seconds: 101 bytes at 1,000 bytes/s buy
        // 101 ms past the first second of owing.
        w.received(&frame(DATA, 0, 1, &[0]), t0 + 10 * S + S * 9 / 10);
        assert_eq!(
            w.client().body_deadline(S, 1000),
            Some(t0 + 11 * S + Duration::from_millis(101))
        );
    }

    #[test]
    fn a_trickled_body_falls_below_the_rate() {
        let (mut w, t0) = watch();
        w.received(&frame(HEADERS, END_HEADERS, 1, b"h"), t0);
        for i in 1..=5 {
            w.received(&frame(DATA, 0, 1, &[0]), t0 + i * S / 2);
        }
        // 5 bytes at 10 bytes/s buy half a second past the first second.
        assert_eq!(
            w.client().body_deadline(10 * S, 10),
            Some(t0 + 10 * S + S / 2)
        );
    }

    #[test]
    fn resets_goaways_and_header_blocks_are_seen() {
        let (mut w, t0) = watch();
        w.received(&frame(HEADERS, 0, 1, b"h"), t0);
        assert_eq!(w.client().header_block, Some(t0));
        w.received(&frame(CONTINUATION, END_HEADERS, 1, b"h"), t0);
        assert_eq!(w.client().header_block, None);
        w.received(&frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()), t0);
        assert_eq!(w.client().body_deadline(S, 0), None);
        w.received(&frame(GOAWAY, 0, 0, &[0; 8]), t0);
        assert!(!w.client().failed, "NO_ERROR is a graceful goodbye");
        w.received(&frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 2]), t0);
        assert!(w.client().failed);
    }

    #[test]
    fn the_server_resetting_a_stream_ends_its_body() {
        let (mut w, t0) = watch();
        w.received(&frame(HEADERS, END_HEADERS, 1, b"h"), t0);
        w.sent(&frame(RST_STREAM, 0, 1, &0u32.to_be_bytes()), t0);
        assert_eq!(w.client().body_deadline(S, 0), None);
    }

    #[test]
    fn a_response_out_of_credit_starves_until_the_client_grants_more() {
        let (mut w, t0) = watch();
        // The client's streams take 50 bytes of the server's DATA; its parameter sits past
        // the first eight payload bytes.
        w.received(&settings(&[(1, 4096), (3, 100), (4, 50)]), t0);
        w.received(&frame(HEADERS, END_STREAM | END_HEADERS, 1, b"h"), t0);
        w.sent(&frame(HEADERS, END_HEADERS, 1, b"h"), t0);
        w.sent(&frame(DATA, 0, 1, &[0; 30]), t0);
        assert_eq!(w.client().starved_since(), None, "20 bytes of credit left");
        w.sent(&frame(DATA, 0, 1, &[0; 20]), t0 + S);
        assert_eq!(w.client().starved_since(), Some(t0 + S));
        // Frames the client sends meanwhile change nothing.
        w.received(
            &frame(WINDOW_UPDATE, 0, 0, &100u32.to_be_bytes()),
            t0 + 2 * S,
        );
        assert_eq!(w.client().starved_since(), Some(t0 + S));
        w.received(
            &frame(WINDOW_UPDATE, 0, 1, &10u32.to_be_bytes()),
            t0 + 3 * S,
        );
        assert_eq!(w.client().starved_since(), None);
        // A larger initial window gives the open stream the difference too.
        w.sent(&frame(DATA, 0, 1, &[0; 10]), t0 + 4 * S);
        assert_eq!(w.client().starved_since(), Some(t0 + 4 * S));
        w.received(&settings(&[(4, 80)]), t0 + 5 * S);
        assert_eq!(w.client().starved_since(), None);
        // The connection window runs out as well: 65,535 + 100 granted, 90 sent so far.
        w.sent(&frame(DATA, 0, 1, &[0; 30]), t0 + 6 * S);
        assert_eq!(w.client().starved_since(), Some(t0 + 6 * S));
        w.received(
            &frame(WINDOW_UPDATE, 0, 1, &1_000_000u32.to_be_bytes()),
            t0 + 7 * S,
        );
        assert_eq!(w.client().starved_since(), None);
        w.sent(&frame(DATA, 0, 1, &[0; 65_545]), t0 + 8 * S);
        assert_eq!(
            w.client().starved_since(),
            Some(t0 + 8 * S),
            "connection window spent"
        );
        // The response's end (or a reset) ends the wait.
        w.sent(&frame(DATA, END_STREAM, 1, &[]), t0 + 9 * S);
        assert_eq!(w.client().starved_since(), None);
    }

    #[test]
    fn a_stream_without_a_response_under_way_is_never_starved() {
        let (mut w, t0) = watch();
        w.received(&settings(&[(4, 0)]), t0);
        w.received(&frame(HEADERS, END_STREAM | END_HEADERS, 1, b"h"), t0);
        assert_eq!(
            w.client().starved_since(),
            None,
            "the handler has not answered"
        );
        w.sent(&frame(HEADERS, END_STREAM | END_HEADERS, 1, b"h"), t0);
        assert_eq!(
            w.client().starved_since(),
            None,
            "a response without a body"
        );
        w.received(&frame(HEADERS, END_STREAM | END_HEADERS, 3, b"h"), t0);
        w.sent(&frame(HEADERS, END_HEADERS, 3, b"h"), t0);
        assert_eq!(w.client().starved_since(), Some(t0));
        w.received(&frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()), t0 + S);
        assert_eq!(w.client().starved_since(), None, "the client reset it");
    }

    #[test]
    fn arbitrary_bytes_either_way_never_panic_and_stay_bounded() {
        // A hostile client controls every byte one way and, through its requests, much of the
        // other: whatever comes, the watch must not panic, and what it keeps stays bounded.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let t0 = Instant::now();
        let (mut starved, mut owed) = (false, false);
        for round in 0..400 {
            // Odd rounds: well-formed frames with random fields (every path of the watch), on
            // few streams or on many; even rounds: garbage, which soon reads as one huge frame.
            let garbage = round % 2 == 0;
            let few = round % 4 == 1;
            let (mut w, _) = watch();
            let mut fresh = 1;
            for step in 0..300u64 {
                let bytes = if garbage {
                    (0..next() % 48).map(|_| next() as u8).collect()
                } else {
                    let kind = (next() % 10) as u8;
                    let mut stream = if few {
                        [0, 1, 3][(next() % 3) as usize]
                    } else if next() % 2 == 0 {
                        fresh += 2; // a new stream
                        fresh
                    } else {
                        (next() % 256) as u32
                    };
                    let mut flags = next() as u8;
                    let mut payload: Vec<u8> = (0..next() % 20).map(|_| next() as u8).collect();
                    if kind == SETTINGS && next() % 2 == 0 {
                        // A small initial window, so that responses run out of credit.
                        let window = next() as u32 % 64;
                        payload = [0, 4].into_iter().chain(window.to_be_bytes()).collect();
                        (flags, stream) = (0, 0);
                    }
                    frame(kind, flags, stream, &payload)
                };
                let now = t0 + Duration::from_millis(step);
                if next() % 2 == 0 {
                    w.received(&bytes, now);
                } else {
                    w.sent(&bytes, now);
                }
                let client = w.client();
                assert!(client.bodies.len() <= 8, "round {round}");
                assert!(client.responses.len() <= 8, "round {round}");
                owed |= client.body_deadline(S, 1000).is_some();
                starved |= client.starved_since().is_some();
            }
        }
        assert!(
            owed && starved,
            "the frames reached both bounds' paths: {owed} {starved}"
        );
    }
}
