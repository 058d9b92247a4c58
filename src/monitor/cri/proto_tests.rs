use super::*;

/// Protobuf encoding for the tests: key, then the value.
fn key(field: u64, wire: u8) -> Vec<u8> {
    enc_varint((field << 3) | u64::from(wire))
}

fn enc_varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn bytes(field: u64, b: &[u8]) -> Vec<u8> {
    let mut out = key(field, 2);
    out.extend(enc_varint(b.len() as u64));
    out.extend_from_slice(b);
    out
}

fn sandbox(id: &str, name: &str, uid: &str, ns: &str, extra: &[u8]) -> Vec<u8> {
    let mut meta = bytes(1, name.as_bytes());
    meta.extend(bytes(2, uid.as_bytes()));
    meta.extend(bytes(3, ns.as_bytes()));
    meta.extend(key(4, 0));
    meta.extend(enc_varint(3)); // attempt
    let mut s = bytes(1, id.as_bytes());
    s.extend(bytes(2, &meta));
    s.extend_from_slice(extra);
    bytes(1, &s)
}

fn sb(id: &str, name: &str, uid: &str, ns: &str) -> Sandbox {
    Sandbox {
        id: id.into(),
        uid: uid.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn varints() {
    type Read = Result<(u64, usize), DecodeError>;
    let cases: &[(&[u8], Read)] = &[
        (&[0], Ok((0, 1))),
        (&[1], Ok((1, 1))),
        (&[0xac, 0x02], Ok((300, 2))),
        (&[0xff, 0xff, 0xff, 0xff, 0x0f], Ok((u32::MAX as u64, 5))),
        (&[0x80], Err(DecodeError::Truncated)),
        (&[], Err(DecodeError::Truncated)),
        (&[0xff; 11], Err(DecodeError::VarintTooLong)),
    ];
    for (input, want) in cases {
        assert_eq!(&varint(input), want, "{input:?}");
    }
}

#[test]
fn responses() {
    // Unknown fields of every wire type, at every level: state (varint 3), created_at
    // (varint 4), labels (len 6), a fixed64 and a fixed32 of a future version.
    let mut extra = key(3, 0);
    extra.extend(enc_varint(1));
    extra.extend(key(4, 0));
    extra.extend(enc_varint(1_700_000_000_000_000_000));
    extra.extend(bytes(6, &bytes(1, b"app")));
    extra.extend(key(9, 1));
    extra.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    extra.extend(key(10, 5));
    extra.extend([1, 2, 3, 4]);
    let two = [
        sandbox("abc", "web-0", "u-1", "shop", &[]),
        sandbox("def", "db-0", "u-2", "kube-system", &extra),
    ]
    .concat();
    let mut trailing_unknown = sandbox("abc", "web-0", "u-1", "shop", &[]);
    trailing_unknown.extend(key(2, 0));
    trailing_unknown.extend(enc_varint(7));
    type Decoded = Result<Vec<Sandbox>, DecodeError>;
    let cases: Vec<(&str, Vec<u8>, Decoded)> = vec![
        ("empty", vec![], Ok(vec![])),
        (
            "two, one with unknown fields",
            two.clone(),
            Ok(vec![
                sb("abc", "web-0", "u-1", "shop"),
                sb("def", "db-0", "u-2", "kube-system"),
            ]),
        ),
        (
            "unknown top-level field",
            trailing_unknown,
            Ok(vec![sb("abc", "web-0", "u-1", "shop")]),
        ),
        (
            "cut short",
            two[..two.len() - 3].to_vec(),
            Err(DecodeError::Truncated),
        ),
        (
            "length past the end",
            [key(1, 2), enc_varint(100), vec![0; 5]].concat(),
            Err(DecodeError::Truncated),
        ),
        (
            "group wire type",
            key(7, 3),
            Err(DecodeError::WireType { field: 7, wire: 3 }),
        ),
        (
            "bad UTF-8 name",
            bytes(1, &bytes(2, &bytes(1, &[0xff, 0xfe]))),
            Err(DecodeError::Utf8 { field: 1 }),
        ),
    ];
    for (what, input, want) in cases {
        assert_eq!(list_pod_sandbox_response(&input), want, "{what}");
    }
}

#[test]
fn frames() {
    assert_eq!(frame(&[]), vec![0, 0, 0, 0, 0]);
    assert_eq!(frame(b"ab"), vec![0, 0, 0, 0, 2, b'a', b'b']);
    let cases: &[(&[u8], Option<&[u8]>)] = &[
        (&[0, 0, 0, 0, 2, b'a', b'b'], Some(b"ab")),
        (&[0, 0, 0, 0, 0], Some(b"")),
        (&[1, 0, 0, 0, 2, b'a', b'b'], None), // compressed
        (&[0, 0, 0, 0, 3, b'a', b'b'], None), // short
        (&[0, 0, 0, 0, 1, b'a', b'b'], None), // two messages or junk
        (&[0, 0, 0], None),
    ];
    for (input, want) in cases {
        assert_eq!(unframe(input), *want, "{input:?}");
    }
}
