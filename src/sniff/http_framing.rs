//! Following HTTP/1.1 request framing in the tenant's byte stream, so every request head on a
//! keep-alive connection can be checked *before* the HTTP server parses it.
//!
//! hyper resolves a request carrying both `Content-Length` and `Transfer-Encoding` by dropping
//! the length (RFC 9112 §6.3) and the gateway would never see the conflict; a proxy must refuse
//! that shape outright (request smuggling). This tracker finds each head, refuses the conflict,
//! and skips bodies (fixed-length or chunked) to find the next head. Pure and total over bytes;
//! anything it cannot follow is passed through for the HTTP server to reject.

/// Longest chunk-size or trailer line followed before giving up (the server then rejects it).
const MAX_LINE: usize = 4096;

/// What to do with the unreleased bytes at the front of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The first `n` bytes may go to the HTTP server.
    Release(usize),
    /// A head (or framing line) is incomplete: wait for more bytes.
    NeedMore,
    /// The next request head has conflicting framing: answer 400 and close.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd(u8),
    Trailers,
    /// Framing no longer followed: the server decides (and will refuse what is malformed).
    Passthrough,
}

/// Request framing state of one connection.
#[derive(Debug, Clone)]
pub struct RequestFraming {
    state: State,
    max_head: usize,
}

impl RequestFraming {
    /// Starts at a request head; heads longer than `max_head` are passed on unchecked (the
    /// server refuses them as too large).
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            max_head,
        }
    }

    /// Looks at the unreleased bytes `input` and says how many may be released.
    pub fn advance(&mut self, input: &[u8]) -> Advance {
        if input.is_empty() {
            return Advance::NeedMore;
        }
        match self.state {
            State::Head => self.head(input),
            State::Fixed(left) => {
                let n = take(left, input.len());
                self.state = if n as u64 == left {
                    State::Head
                } else {
                    State::Fixed(left - n as u64)
                };
                Advance::Release(n)
            }
            State::ChunkSize => self.line(input, |line| {
                let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                let size = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                match size {
                    Some(0) => State::Trailers,
                    Some(size) => State::ChunkData(size),
                    None => State::Passthrough,
                }
            }),
            State::ChunkData(left) => {
                let n = take(left, input.len());
                self.state = if n as u64 == left {
                    State::ChunkEnd(2)
                } else {
                    State::ChunkData(left - n as u64)
                };
                Advance::Release(n)
            }
            State::ChunkEnd(left) => {
                let n = take(u64::from(left), input.len());
                self.state = if n == usize::from(left) {
                    State::ChunkSize
                } else {
                    State::ChunkEnd(left - n as u8)
                };
                Advance::Release(n)
            }
            State::Trailers => self.line(input, |line| {
                if line.is_empty() {
                    State::Head
                } else {
                    State::Trailers
                }
            }),
            State::Passthrough => Advance::Release(input.len()),
        }
    }

    fn head(&mut self, input: &[u8]) -> Advance {
        let Some(end) = find(input, b"\r\n\r\n").map(|i| i + 4) else {
            if input.len() > self.max_head {
                self.state = State::Passthrough;
                return Advance::Release(input.len());
            }
            return Advance::NeedMore;
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(
            request.parse(&input[..end]),
            Ok(httparse::Status::Complete(_))
        ) {
            self.state = State::Passthrough;
            return Advance::Release(input.len());
        }
        let values = |name: &'static str| -> Vec<&[u8]> {
            request
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect()
        };
        let lengths = values("content-length");
        let codings = values("transfer-encoding");
        if !lengths.is_empty() && !codings.is_empty() {
            return Advance::Refuse;
        }
        self.state = if let Some(last) = codings.last() {
            let chunked = last
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if chunked {
                State::ChunkSize
            } else {
                State::Passthrough
            }
        } else if let Some(length) = lengths.first() {
            match std::str::from_utf8(length)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                Some(0) => State::Head,
                Some(n) => State::Fixed(n),
                None => State::Passthrough,
            }
        } else {
            State::Head
        };
        Advance::Release(end)
    }

    /// Releases one CRLF-terminated line and moves to `next(line)`.
    fn line(&mut self, input: &[u8], next: impl FnOnce(&[u8]) -> State) -> Advance {
        match find(input, b"\r\n") {
            Some(i) => {
                self.state = next(&input[..i]);
                Advance::Release(i + 2)
            }
            None if input.len() > MAX_LINE => {
                self.state = State::Passthrough;
                Advance::Release(input.len())
            }
            None => Advance::NeedMore,
        }
    }
}

fn take(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `step` bytes; returns what was released before a refusal.
    fn run(stream: &[u8], step: usize) -> (usize, bool) {
        let mut framing = RequestFraming::new(16384);
        let (mut released, mut available) = (0, 0);
        while released < stream.len() {
            match framing.advance(&stream[released..available]) {
                Advance::Release(n) => released += n,
                Advance::Refuse => return (released, true),
                Advance::NeedMore => {
                    assert!(available < stream.len(), "stuck at {released}");
                    available = (available + step).min(stream.len());
                }
            }
        }
        (released, false)
    }

    #[test]
    fn keep_alive_requests_with_bodies_are_followed_to_the_next_head() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 3, 7, 1000] {
            assert_eq!(run(stream, step), (stream.len(), false), "step {step}");
        }
    }

    #[test]
    fn conflicting_framing_is_refused_in_either_order_and_on_a_later_request() {
        let first = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for smuggled in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-length: 5\r\n\r\n0\r\n\r\n"[..],
        ] {
            let stream = [&first[..], smuggled].concat();
            assert_eq!(run(&stream, 4), (first.len(), true));
        }
    }

    #[test]
    fn what_cannot_be_followed_is_left_to_the_server() {
        let garbage = b"\x16\x03\x01\x00\x05hello\r\n\r\n";
        assert_eq!(run(garbage, 5), (garbage.len(), false));
        let mut framing = RequestFraming::new(16);
        assert_eq!(framing.advance(&[b'a'; 17]), Advance::Release(17));
        let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nrest";
        assert_eq!(run(bad_chunk, 100), (bad_chunk.len(), false));
    }
}
