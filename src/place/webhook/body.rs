//! The request body of an admission call: its length from the head, read within the
//! connection's deadline and capped. Pure parsing over bytes and the `Wire` read loop.

use std::time::Instant;

use crate::agent::http::request::{is_timeout, left, Wire};

/// The largest AdmissionReview accepted. The API server refuses objects over 3 MiB (etcd's
/// request limit is 1.5 MiB); the review wraps one pod, so 4 MiB leaves room.
pub const MAX_BODY: usize = 4 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// No Content-Length (a chunked body): 411.
    NoLength,
    /// 413.
    TooLarge(usize),
    /// A malformed or repeated Content-Length: 400.
    Bad(&'static str),
}

/// The header `name`'s values (case-insensitive), from a request head.
fn header_values<'a>(head: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    head.lines().skip(1).filter_map(move |line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether the client may send another request on this connection: HTTP/1.1 without
/// `Connection: close` (HTTP/1.0 and anything unreadable: one request).
pub fn keep_alive(head: &[u8]) -> bool {
    let Ok(head) = std::str::from_utf8(head) else {
        return false;
    };
    let http11 = head
        .lines()
        .next()
        .is_some_and(|l| l.trim_end().ends_with(" HTTP/1.1"));
    http11
        && !header_values(head, "connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// How many body bytes follow the head.
pub fn content_length(head: &[u8]) -> Result<usize, BodyError> {
    let head = std::str::from_utf8(head).map_err(|_| BodyError::Bad("the head is not UTF-8"))?;
    if header_values(head, "transfer-encoding").next().is_some() {
        return Err(BodyError::NoLength);
    }
    let mut values = header_values(head, "content-length");
    let value = values.next().ok_or(BodyError::NoLength)?;
    if values.next().is_some() {
        return Err(BodyError::Bad("more than one Content-Length"));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BodyError::Bad("Content-Length is not a number"));
    }
    let n: usize = value.parse().map_err(|_| BodyError::TooLarge(usize::MAX))?;
    if n > MAX_BODY {
        return Err(BodyError::TooLarge(n));
    }
    Ok(n)
}

/// The body: `have` (read with the head) and the rest up to `len`, by `deadline`.
pub fn read_body(
    wire: &mut dyn Wire,
    mut have: Vec<u8>,
    len: usize,
    deadline: Instant,
) -> std::io::Result<Vec<u8>> {
    have.truncate(len);
    have.reserve(len - have.len());
    let mut buf = [0u8; 16 * 1024];
    while have.len() < len {
        let remaining = left(deadline).ok_or(std::io::ErrorKind::TimedOut)?;
        wire.set_timeout(remaining)?;
        let want = buf.len().min(len - have.len());
        match wire.read(&mut buf[..want]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => have.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_table() {
        let cases: &[(&str, Result<usize, BodyError>)] = &[
            (
                "POST /mutate HTTP/1.1\r\nContent-Length: 12\r\n\r\n",
                Ok(12),
            ),
            ("POST /mutate HTTP/1.1\r\ncontent-length:0\r\n\r\n", Ok(0)),
            (
                "POST /mutate HTTP/1.1\r\nHost: x\r\n\r\n",
                Err(BodyError::NoLength),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Err(BodyError::NoLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                Err(BodyError::Bad("more than one Content-Length")),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                Err(BodyError::Bad("Content-Length is not a number")),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 4194305\r\n\r\n",
                Err(BodyError::TooLarge(MAX_BODY + 1)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                Err(BodyError::TooLarge(usize::MAX)),
            ),
        ];
        for (head, want) in cases {
            assert_eq!(&content_length(head.as_bytes()), want, "{head:?}");
        }
    }

    #[test]
    fn keep_alive_table() {
        let cases: &[(&str, bool)] = &[
            ("POST /mutate HTTP/1.1\r\nHost: x\r\n\r\n", true),
            (
                "POST /mutate HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            ("POST /mutate HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                "POST /mutate HTTP/1.1\r\nconnection: Upgrade, Close\r\n\r\n",
                false,
            ),
            ("POST /mutate HTTP/1.0\r\nHost: x\r\n\r\n", false),
            ("POST /mutate\r\n\r\n", false),
        ];
        for (head, want) in cases {
            assert_eq!(keep_alive(head.as_bytes()), *want, "{head:?}");
        }
    }
}
