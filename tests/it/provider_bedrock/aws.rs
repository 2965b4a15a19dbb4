//! The test's own AWS pieces, written independently of the gateway's code: SHA-256, HMAC,
//! a SigV4 checker that recomputes the signature of a recorded request from scratch, and an
//! event-stream message encoder (CRC32 included) for the mock's ConverseStream bodies.

use std::collections::HashMap;

use crate::common::upstream::Recorded;

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// FIPS 180-4 SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, add) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(add);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// RFC 2104 HMAC over SHA-256.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3986 percent-encoding of everything but unreserved characters and `/`.
fn encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a SigV4 header signature must have been made with.
pub struct Expect<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
}

/// Recomputes the SigV4 signature of `request` as the receiving AWS service would (canonical
/// request from what arrived, the path encoded once more) and checks the `Authorization` header.
pub fn verify_sigv4(request: &Recorded, expect: &Expect<'_>) {
    let authorization = request
        .header("authorization")
        .expect("no authorization header");
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .unwrap_or_else(|| panic!("not SigV4: {authorization}"));
    let fields: HashMap<&str, &str> = fields
        .split(", ")
        .map(|f| f.split_once('=').unwrap())
        .collect();
    let amz_date = request.header("x-amz-date").expect("no x-amz-date");
    assert_eq!(amz_date.len(), 16, "x-amz-date {amz_date}");
    let scope = format!(
        "{}/{}/{}/aws4_request",
        &amz_date[..8],
        expect.region,
        expect.service
    );
    assert_eq!(
        fields["Credential"],
        format!("{}/{scope}", expect.access_key_id)
    );
    let signed: Vec<&str> = fields["SignedHeaders"].split(';').collect();
    let mut sorted = signed.clone();
    sorted.sort();
    assert_eq!(signed, sorted, "signed headers must be sorted");
    for needed in ["host", "x-amz-date"] {
        assert!(signed.contains(&needed), "{needed} not signed: {signed:?}");
    }
    match expect.token {
        Some(token) => {
            assert_eq!(request.header("x-amz-security-token"), Some(token));
            assert!(signed.contains(&"x-amz-security-token"));
        }
        None => assert_eq!(request.header("x-amz-security-token"), None),
    }
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        request.method,
        encode_path(&request.path),
        request.query.clone().unwrap_or_default()
    );
    for name in &signed {
        let value = request
            .header(name)
            .unwrap_or_else(|| panic!("signed header {name} was not sent"));
        canonical.push_str(&format!("{name}:{}\n", value.trim()));
    }
    canonical.push('\n');
    canonical.push_str(fields["SignedHeaders"]);
    canonical.push('\n');
    canonical.push_str(&hex(&sha256(&request.body)));
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&sha256(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", expect.secret).as_bytes(),
        &amz_date.as_bytes()[..8],
    );
    for part in [expect.region, expect.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    assert_eq!(
        fields["Signature"],
        hex(&hmac(&key, string_to_sign.as_bytes())),
        "signature mismatch; canonical request:\n{canonical}"
    );
}

/// IEEE CRC32 (the event-stream checksum), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One event-stream message with string headers.
pub fn event_message(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
    let mut section = Vec::new();
    for (name, value) in headers {
        section.push(name.len() as u8);
        section.extend_from_slice(name.as_bytes());
        section.push(7);
        section.extend_from_slice(&(value.len() as u16).to_be_bytes());
        section.extend_from_slice(value.as_bytes());
    }
    let total = 16 + section.len() + payload.len();
    let mut out = Vec::new();
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(section.len() as u32).to_be_bytes());
    let prelude = crc32(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&section);
    out.extend_from_slice(payload.as_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A ConverseStream event.
pub fn event(event_type: &str, payload: &str) -> Vec<u8> {
    event_message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (for STS expirations).
pub fn iso8601(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rest = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[test]
fn own_primitives_match_published_vectors() {
    assert_eq!(
        hex(&sha256(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hex(&sha256(&[b'a'; 1000])).len(), 64);
    // RFC 4231 test case 2.
    assert_eq!(
        hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(iso8601(1_440_938_160), "2015-08-30T12:36:00Z");
}
