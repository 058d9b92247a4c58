//! The few protobuf messages of CRI's ListPodSandbox, decoded by hand (no protoc, no codegen):
//! ListPodSandboxResponse { repeated PodSandbox items = 1 }
//! PodSandbox { string id = 1; PodSandboxMetadata metadata = 2; ... }
//! PodSandboxMetadata { string name = 1; string uid = 2; string namespace = 3; uint32 attempt = 4 }
//! Every other field is skipped by its wire type, so newer runtimes' additions do no harm.

/// One pod sandbox as the runtime knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// Why a response could not be decoded (the runtime sent something that is not the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the message ends inside a field")]
    Truncated,
    #[error("a varint is longer than 10 bytes")]
    VarintTooLong,
    #[error("field {field} has wire type {wire}, which this decoder does not know")]
    WireType { field: u64, wire: u8 },
    #[error("field {field} is not valid UTF-8")]
    Utf8 { field: u64 },
}

/// A field's value, by wire type.
#[derive(Debug, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Reads a base-128 varint at the start of `buf`: (value, bytes used).
fn varint(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut v = 0u64;
    for (i, b) in buf.iter().enumerate() {
        if i == 10 {
            return Err(DecodeError::VarintTooLong);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(DecodeError::Truncated)
}

/// The fields of one message, in order: (field number, value).
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Value<'_>)>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (key, n) = varint(buf)?;
        buf = &buf[n..];
        let (field, wire) = (key >> 3, (key & 7) as u8);
        let (value, used) = match wire {
            0 => {
                let (v, n) = varint(buf)?;
                (Value::Varint(v), n)
            }
            1 | 5 => {
                let len = if wire == 1 { 8 } else { 4 };
                if buf.len() < len {
                    return Err(DecodeError::Truncated);
                }
                (Value::Fixed, len)
            }
            2 => {
                let (len, n) = varint(buf)?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| n.checked_add(l))
                    .filter(|&e| e <= buf.len())
                    .ok_or(DecodeError::Truncated)?;
                (Value::Bytes(&buf[n..end]), end)
            }
            // Groups (3, 4) are not used by CRI; anything else is not protobuf.
            _ => return Err(DecodeError::WireType { field, wire }),
        };
        out.push((field, value));
        buf = &buf[used..];
    }
    Ok(out)
}

fn string(field: u64, b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8 { field })
}

/// Decodes a ListPodSandboxResponse.
pub fn list_pod_sandbox_response(buf: &[u8]) -> Result<Vec<Sandbox>, DecodeError> {
    let mut out = Vec::new();
    for (field, v) in fields(buf)? {
        if let (1, Value::Bytes(b)) = (field, v) {
            out.push(pod_sandbox(b)?);
        }
    }
    Ok(out)
}

fn pod_sandbox(buf: &[u8]) -> Result<Sandbox, DecodeError> {
    let mut s = Sandbox::default();
    for (field, v) in fields(buf)? {
        match (field, v) {
            (1, Value::Bytes(b)) => s.id = string(1, b)?,
            (2, Value::Bytes(b)) => metadata(b, &mut s)?,
            _ => {}
        }
    }
    Ok(s)
}

fn metadata(buf: &[u8], s: &mut Sandbox) -> Result<(), DecodeError> {
    for (field, v) in fields(buf)? {
        match (field, v) {
            (1, Value::Bytes(b)) => s.name = string(1, b)?,
            (2, Value::Bytes(b)) => s.uid = string(2, b)?,
            (3, Value::Bytes(b)) => s.namespace = string(3, b)?,
            _ => {}
        }
    }
    Ok(())
}

/// A gRPC length-prefixed message: flag 0 (uncompressed), u32 big-endian length, the bytes.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// The one message of a unary response body; None when the body is not exactly one
/// uncompressed frame (compression is never asked for, so never expected).
pub fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (head, rest) = body.split_at_checked(5)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    (head[0] == 0 && rest.len() == len).then_some(rest)
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;
