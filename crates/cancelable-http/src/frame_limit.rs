//! WebSocket size limits enforced at the frame header, before any payload is buffered.
//!
//! tungstenite checks a frame's size at its header, but a message's only once the frame that
//! crosses the limit has been read in full: a peer could make the server wait for (and hold)
//! up to a frame more than the limit, or trickle it. [`FrameLimit`] sits under tungstenite,
//! sees every byte the peer sends and follows the frame headers in them (RFC 6455, section
//! 5.2); the header that announces a frame over the frame limit, or a message over the
//! message limit, ends the read with [`TooBig`], and the server closes with 1009 at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_lite::io::{AsyncRead, AsyncWrite};

/// The read error of a [`FrameLimit`] that saw a header over a limit.
#[derive(Debug)]
pub(crate) struct TooBig {
    what: &'static str,
    size: u64,
    limit: u64,
}

impl std::fmt::Display for TooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebSocket {} of {} bytes over the limit of {} bytes",
            self.what, self.size, self.limit
        )
    }
}

impl std::error::Error for TooBig {}

impl TooBig {
    /// Whether `error` is one of ours.
    pub(crate) fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<TooBig>())
    }
}

/// Where the parser is in the peer's byte stream.
#[derive(Debug)]
enum Position {
    /// Collecting a frame header (2 to 14 bytes).
    Header { bytes: [u8; 14], have: usize },
    /// Skipping the payload of the current frame.
    Payload { left: u64 },
}

/// A peer's stream (`AsyncRead + AsyncWrite`) that fails reads once a frame header goes
/// over `max_frame` (one frame's payload) or `max_message` (the data frames of one message).
#[derive(Debug)]
pub(crate) struct FrameLimit<T> {
    inner: T,
    max_frame: u64,
    max_message: u64,
    position: Position,
    /// Payload bytes announced so far for the message being received.
    message: u64,
}

impl<T> FrameLimit<T> {
    pub(crate) fn new(inner: T, max_frame: usize, max_message: usize) -> Self {
        Self {
            inner,
            max_frame: max_frame as u64,
            max_message: max_message as u64,
            position: Position::Header {
                bytes: [0; 14],
                have: 0,
            },
            message: 0,
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Follows the frame headers in `data`, the next bytes from the peer.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), TooBig> {
        while !data.is_empty() {
            match &mut self.position {
                Position::Payload { left } => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.position = Position::Header {
                            bytes: [0; 14],
                            have: 0,
                        };
                    }
                }
                Position::Header { bytes, have } => {
                    bytes[*have] = data[0];
                    *have += 1;
                    data = &data[1..];
                    if let Some(len) = header_len(&bytes[..*have]) {
                        let (first, payload) = (bytes[0], len);
                        self.header(first, payload)?;
                        self.position = if payload == 0 {
                            Position::Header {
                                bytes: [0; 14],
                                have: 0,
                            }
                        } else {
                            Position::Payload { left: payload }
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Accounts for a complete header: `first` is its first byte, `payload` its length.
    fn header(&mut self, first: u8, payload: u64) -> Result<(), TooBig> {
        if payload > self.max_frame {
            return Err(TooBig {
                what: "frame",
                size: payload,
                limit: self.max_frame,
            });
        }
        let opcode = first & 0x0f;
        if opcode >= 0x8 {
            return Ok(()); // control frames may come between a message's fragments
        }
        if opcode != 0x0 {
            self.message = 0; // a new message (a continuation adds to the current one)
        }
        self.message = self.message.saturating_add(payload);
        if self.message > self.max_message {
            return Err(TooBig {
                what: "message",
                size: self.message,
                limit: self.max_message,
            });
        }
        if first & 0x80 != 0 {
            self.message = 0; // FIN: the message is complete
        }
        Ok(())
    }
}

/// The payload length of a complete frame header in `bytes`, `None` while it is incomplete.
fn header_len(bytes: &[u8]) -> Option<u64> {
    let second = *bytes.get(1)?;
    let (extended, short) = match second & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    if bytes.len() < 2 + extended + mask {
        return None;
    }
    Some(short.unwrap_or_else(|| {
        bytes[2..2 + extended]
            .iter()
            .fold(0, |len, &b| (len << 8) | u64::from(b))
    }))
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameLimit<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        match this.scan(&buf[..n]) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(too_big) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, too_big))),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameLimit<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> FrameLimit<()> {
        FrameLimit::new((), 100, 150)
    }

    /// A masked client frame header for `len` payload bytes.
    fn header(first: u8, len: u64) -> Vec<u8> {
        let mut out = vec![first];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    #[test]
    fn a_frame_header_over_the_frame_limit_is_refused_before_its_payload() {
        let mut l = limit();
        assert!(l.scan(&header(0x82, 100)).is_ok());
        assert!(l.scan(&[0; 100]).is_ok());
        let err = l.scan(&header(0x82, 101)).unwrap_err();
        assert_eq!((err.what, err.size, err.limit), ("frame", 101, 100));
    }

    #[test]
    fn headers_split_across_reads_and_64_bit_lengths_are_followed() {
        let mut l = FrameLimit::new((), u64::MAX as usize, u64::MAX as usize);
        let mut bytes = header(0x02, 70_000);
        bytes.extend(vec![0; 70_000]);
        bytes.extend(header(0x80, 1 << 33));
        for chunk in bytes.chunks(3) {
            l.scan(chunk).unwrap();
        }
        assert!(matches!(l.position, Position::Payload { left } if left == 1 << 33));
        assert_eq!(
            l.message, 0,
            "the fragmented message ended with its FIN frame"
        );
        let mut small = limit();
        let err = small.scan(&header(0x82, 1 << 33)).unwrap_err();
        assert_eq!(err.size, 1 << 33);
    }

    #[test]
    fn a_message_is_refused_at_the_header_that_crosses_the_limit() {
        let mut l = limit();
        let mut first = header(0x01, 100);
        first.extend([b'a'; 100]);
        l.scan(&first).unwrap();
        // A ping between fragments does not count.
        let mut ping = header(0x89, 4);
        ping.extend(b"ping");
        l.scan(&ping).unwrap();
        let err = l.scan(&header(0x80, 51)).unwrap_err();
        assert_eq!((err.what, err.size, err.limit), ("message", 151, 150));
    }

    #[test]
    fn each_message_starts_from_zero() {
        let mut l = limit();
        for _ in 0..5 {
            let mut whole = header(0x82, 100);
            whole.extend([0; 100]);
            whole.extend(header(0x80, 0));
            l.scan(&whole).unwrap();
        }
        let mut two = header(0x02, 100);
        two.extend([0; 100]);
        two.extend(header(0x80, 50));
        two.extend([0; 50]);
        l.scan(&two).unwrap();
    }
}
