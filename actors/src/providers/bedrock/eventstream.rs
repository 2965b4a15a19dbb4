//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the binary framing of
//! Bedrock's ConverseStream: a pure, incremental decoder that never panics, whatever the bytes.
//!
//! One message on the wire:
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32
//! ```
//!
//! All integers are big-endian; the prelude CRC covers the first 8 bytes, the message CRC every
//! byte before it. A header is a name (u8 length, UTF-8), a type tag (u8) and a typed value.
//!
//! Lengths come from the network, so they are checked (prelude CRC first, then bounds) before any
//! of them is trusted, and a message is only decoded once all of its bytes have arrived. After a
//! failure the stream cannot be resynchronised (there is no delimiter to search for), so the
//! decoder keeps answering with that failure.

use bytes::{Buf, Bytes, BytesMut};

/// Total length + headers length + prelude CRC.
const PRELUDE_LEN: usize = 12;
/// Where the prelude CRC sits: after the two lengths it covers.
const PRELUDE_CRC_AT: usize = 8;
/// The message CRC at the end.
const TRAILER_LEN: usize = 4;
/// A message with no headers and no payload.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + TRAILER_LEN;
/// Largest headers section accepted (the limit AWS's SDKs enforce).
pub const MAX_HEADERS_LEN: usize = 128 * 1024;
/// Largest payload accepted (the limit AWS's SDKs enforce); bounds what one message may buffer.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

/// A typed header value, as the format defines them (type tags 0 to 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// In wire order (names are not required to be unique by the format).
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    /// The first string header called `name` (`:event-type`, `:message-type`, ...).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    PreludeChecksum,
    MessageChecksum,
    /// The prelude declares lengths that cannot describe a valid message, or exceed the limits.
    BadLength,
    /// A header is cut short, has an unknown type tag, or is not valid UTF-8 where text is due.
    BadHeader(&'static str),
    /// The body ended with part of a message still buffered.
    Truncated,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PreludeChecksum => f.write_str("prelude checksum mismatch"),
            Self::MessageChecksum => f.write_str("message checksum mismatch"),
            Self::BadLength => f.write_str("invalid message length"),
            Self::BadHeader(why) => write!(f, "invalid header ({why})"),
            Self::Truncated => f.write_str("the stream ended in the middle of a message"),
        }
    }
}

/// Incremental decoder: feed network reads with [`Decoder::extend`], take whole messages with
/// [`Decoder::next_message`].
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: BytesMut,
    failed: Option<DecodeError>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers one network read (split anywhere).
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.decode_one() {
            Ok(message) => Ok(message),
            Err(error) => {
                self.buffer.clear();
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The body ended: an error when a partial message is left over.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.buffer.is_empty() {
            Ok(())
        } else {
            self.buffer.clear();
            self.failed = Some(DecodeError::Truncated);
            Err(DecodeError::Truncated)
        }
    }

    fn decode_one(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buffer.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = be_u32(&self.buffer[0..4]) as usize;
        let headers_len = be_u32(&self.buffer[4..8]) as usize;
        if crc32fast::hash(&self.buffer[..PRELUDE_CRC_AT])
            != be_u32(&self.buffer[PRELUDE_CRC_AT..PRELUDE_LEN])
        {
            return Err(DecodeError::PreludeChecksum);
        }
        // Checked before waiting for the body, so a hostile length cannot make us buffer more
        // than one maximal message.
        let payload_len = total
            .checked_sub(MIN_MESSAGE_LEN)
            .and_then(|rest| rest.checked_sub(headers_len))
            .ok_or(DecodeError::BadLength)?;
        if headers_len > MAX_HEADERS_LEN || payload_len > MAX_PAYLOAD_LEN {
            return Err(DecodeError::BadLength);
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let frame = self.buffer.split_to(total).freeze();
        let crc_at = total - TRAILER_LEN;
        if crc32fast::hash(&frame[..crc_at]) != be_u32(&frame[crc_at..]) {
            return Err(DecodeError::MessageChecksum);
        }
        let headers_end = PRELUDE_LEN + headers_len;
        let headers = parse_headers(&frame[PRELUDE_LEN..headers_end])?;
        Ok(Some(Message {
            headers,
            payload: frame.slice(headers_end..crc_at),
        }))
    }
}

/// `bytes` with the right prelude and message CRC32 written into every message whose declared
/// length fits, walking message by message as the decoder does. For fuzzing: a fuzzer cannot
/// compute checksums, so without this its mutations never reach the headers and payloads.
pub fn with_checksums_filled_in(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let mut start = 0;
    while let Some(prelude) = bytes.get(start..start + PRELUDE_LEN) {
        let total = be_u32(prelude) as usize;
        let Some(end) = start
            .checked_add(total)
            .filter(|&end| total >= MIN_MESSAGE_LEN && end <= bytes.len())
        else {
            break;
        };
        let crc_start = start + PRELUDE_CRC_AT;
        let prelude_crc = crc32fast::hash(&bytes[start..crc_start]);
        bytes[crc_start..start + PRELUDE_LEN].copy_from_slice(&prelude_crc.to_be_bytes());
        let crc_at = end - TRAILER_LEN;
        let message_crc = crc32fast::hash(&bytes[start..crc_at]);
        bytes[crc_at..end].copy_from_slice(&message_crc.to_be_bytes());
        start = end;
    }
    bytes
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

/// Parses a headers section whose length was already checked against the message.
fn parse_headers(mut section: &[u8]) -> Result<Vec<(String, HeaderValue)>, DecodeError> {
    let mut headers = Vec::new();
    while section.has_remaining() {
        let name_len = take_u8(&mut section)? as usize;
        if name_len == 0 {
            return Err(DecodeError::BadHeader("empty name"));
        }
        let name = take_text(&mut section, name_len)?;
        let value = match take_u8(&mut section)? {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(take_array(&mut section)?)),
            3 => HeaderValue::Int16(i16::from_be_bytes(take_array(&mut section)?)),
            4 => HeaderValue::Int32(i32::from_be_bytes(take_array(&mut section)?)),
            5 => HeaderValue::Int64(i64::from_be_bytes(take_array(&mut section)?)),
            6 => {
                let len = u16::from_be_bytes(take_array(&mut section)?) as usize;
                HeaderValue::Bytes(take_slice(&mut section, len)?.to_vec())
            }
            7 => {
                let len = u16::from_be_bytes(take_array(&mut section)?) as usize;
                HeaderValue::String(take_text(&mut section, len)?)
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(take_array(&mut section)?)),
            9 => HeaderValue::Uuid(take_array(&mut section)?),
            _ => return Err(DecodeError::BadHeader("unknown value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

fn take_u8(section: &mut &[u8]) -> Result<u8, DecodeError> {
    let [byte] = take_array::<1>(section)?;
    Ok(byte)
}

fn take_array<const N: usize>(section: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let mut out = [0u8; N];
    out.copy_from_slice(take_slice(section, N)?);
    Ok(out)
}

fn take_slice<'a>(section: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
    if section.len() < len {
        return Err(DecodeError::BadHeader("cut short"));
    }
    let (head, rest) = section.split_at(len);
    *section = rest;
    Ok(head)
}

fn take_text(section: &mut &[u8], len: usize) -> Result<String, DecodeError> {
    let bytes = take_slice(section, len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadHeader("text is not UTF-8"))
}

/// Encodes one message (tests use it to build streams; the gateway never sends event streams).
#[cfg(test)]
pub(crate) fn encode(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut section = Vec::new();
    for (name, value) in headers {
        section.push(name.len() as u8);
        section.extend_from_slice(name.as_bytes());
        match value {
            HeaderValue::Bool(true) => section.push(0),
            HeaderValue::Bool(false) => section.push(1),
            HeaderValue::Byte(v) => {
                section.push(2);
                section.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int16(v) => {
                section.push(3);
                section.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int32(v) => {
                section.push(4);
                section.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int64(v) => {
                section.push(5);
                section.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                section.push(6);
                section.extend_from_slice(&(v.len() as u16).to_be_bytes());
                section.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                section.push(7);
                section.extend_from_slice(&(v.len() as u16).to_be_bytes());
                section.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                section.push(8);
                section.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                section.push(9);
                section.extend_from_slice(v);
            }
        }
    }
    let total = (MIN_MESSAGE_LEN + section.len() + payload.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(section.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&section);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A Bedrock-style event message: `:event-type`, `:content-type` JSON, `:message-type` event.
#[cfg(test)]
pub(crate) fn encode_event(event_type: &str, payload: &str) -> Vec<u8> {
    encode(
        &[
            (":event-type", HeaderValue::String(event_type.to_owned())),
            (
                ":content-type",
                HeaderValue::String("application/json".to_owned()),
            ),
            (":message-type", HeaderValue::String("event".to_owned())),
        ],
        payload.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn filled_in_checksums_are_the_ones_the_decoder_checks() {
        let headers = [
            (":event-type", HeaderValue::String("messageStop".into())),
            ("t", HeaderValue::Bool(true)),
            ("i", HeaderValue::Int64(-7)),
            ("u", HeaderValue::Uuid([9; 16])),
        ];
        let one = encode(&headers, br#"{"stopReason":"end_turn"}"#);
        let two = encode(&headers[..1], b"{}");
        let mut stream = [one.clone(), two.clone()].concat();
        for crc_at in [8, one.len() - 4, one.len() + 8, stream.len() - 4] {
            stream[crc_at..crc_at + 4].fill(0);
        }
        // A cut last message is left alone: its declared length runs past the end.
        stream.extend_from_slice(&one[..20]);
        let filled = with_checksums_filled_in(&stream);
        assert_eq!(&filled[..one.len()], &one[..]);
        assert_eq!(&filled[one.len()..one.len() + two.len()], &two[..]);
        assert_eq!(&filled[one.len() + two.len()..], &one[..20]);
        let mut decoder = Decoder::new();
        decoder.extend(&filled);
        assert!(matches!(decoder.next_message(), Ok(Some(m)) if m.headers.len() == 4));
        assert!(matches!(decoder.next_message(), Ok(Some(m)) if m.payload.as_ref() == b"{}"));
    }

    const VECTORS: &str =
        include_str!("../../../../tests/fixtures/bedrock/eventstream/vectors.json");

    fn vectors() -> Vec<Value> {
        let doc: Value = serde_json::from_str(VECTORS).unwrap();
        doc["vectors"].as_array().unwrap().clone()
    }

    fn expected_header(spec: &Value) -> (String, HeaderValue) {
        let name = spec[0].as_str().unwrap().to_owned();
        let v = &spec[2];
        let value = match spec[1].as_str().unwrap() {
            "bool" => HeaderValue::Bool(v.as_bool().unwrap()),
            "byte" => HeaderValue::Byte(v.as_i64().unwrap() as i8),
            "int16" => HeaderValue::Int16(v.as_i64().unwrap() as i16),
            "int32" => HeaderValue::Int32(v.as_i64().unwrap() as i32),
            "int64" => HeaderValue::Int64(v.as_i64().unwrap()),
            "bytes" => HeaderValue::Bytes(hex::decode(v.as_str().unwrap()).unwrap()),
            "string" => HeaderValue::String(v.as_str().unwrap().to_owned()),
            "timestamp" => HeaderValue::Timestamp(v.as_i64().unwrap()),
            "uuid" => {
                let bytes = hex::decode(v.as_str().unwrap()).unwrap();
                HeaderValue::Uuid(bytes.try_into().unwrap())
            }
            other => panic!("unknown type {other}"),
        };
        (name, value)
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        let mut decoder = Decoder::new();
        decoder.extend(bytes);
        let mut out = Vec::new();
        while let Some(message) = decoder.next_message()? {
            out.push(message);
        }
        decoder.finish()?;
        Ok(out)
    }

    #[test]
    fn aws_test_vectors_decode_as_published() {
        for vector in vectors() {
            let name = vector["name"].as_str().unwrap();
            let bytes = hex::decode(vector["encoded_hex"].as_str().unwrap()).unwrap();
            let result = decode_all(&bytes);
            if vector["expectation"] == "failure" {
                assert!(result.is_err(), "{name} should fail, got {result:?}");
                continue;
            }
            let messages = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(messages.len(), 1, "{name}");
            let decoded = &vector["decoded"];
            let headers: Vec<_> = decoded["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(expected_header)
                .collect();
            assert_eq!(messages[0].headers, headers, "{name}");
            assert_eq!(
                messages[0].payload.as_ref(),
                decoded["payload"].as_str().unwrap().as_bytes(),
                "{name}"
            );
            // The encoder used by the other tests produces the published bytes.
            let borrowed: Vec<(&str, HeaderValue)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            assert_eq!(encode(&borrowed, &messages[0].payload), bytes, "{name}");
        }
    }

    #[test]
    fn messages_survive_any_read_boundary() {
        let mut stream = encode_event("messageStart", r#"{"role":"assistant"}"#);
        stream.extend(encode_event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"é"}}"#,
        ));
        stream.extend(encode(&[], b""));
        for piece in 1..stream.len() {
            let mut decoder = Decoder::new();
            let mut types = Vec::new();
            for chunk in stream.chunks(piece) {
                decoder.extend(chunk);
                while let Some(message) = decoder.next_message().unwrap() {
                    types.push(message.header_str(":event-type").map(str::to_owned));
                }
            }
            decoder.finish().unwrap();
            assert_eq!(
                types,
                [
                    Some("messageStart".to_owned()),
                    Some("contentBlockDelta".to_owned()),
                    None
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn a_cut_message_is_reported_at_the_end() {
        let stream = encode_event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let mut decoder = Decoder::new();
        decoder.extend(&stream[..stream.len() - 1]);
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated));
    }

    #[test]
    fn hostile_lengths_are_refused_before_buffering() {
        // A valid prelude CRC over a 4 GiB total length: refused at once, not awaited.
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&u32::MAX.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let mut decoder = Decoder::new();
        decoder.extend(&prelude);
        assert_eq!(decoder.next_message(), Err(DecodeError::BadLength));
        // Headers longer than the message.
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&20u32.to_be_bytes());
        prelude.extend_from_slice(&10u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let mut decoder = Decoder::new();
        decoder.extend(&prelude);
        assert_eq!(decoder.next_message(), Err(DecodeError::BadLength));
        // Once failed, always failed.
        decoder.extend(&encode(&[], b""));
        assert_eq!(decoder.next_message(), Err(DecodeError::BadLength));
    }

    /// A small deterministic fuzz: every mutation and truncation of a valid stream decodes or
    /// fails cleanly, never panics.
    #[test]
    fn mutated_streams_never_panic() {
        let mut stream = encode_event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        stream.extend(encode(
            &[
                ("a", HeaderValue::Bytes(vec![1, 2, 3])),
                ("b", HeaderValue::Uuid([7; 16])),
                ("c", HeaderValue::Int64(-1)),
            ],
            b"{}",
        ));
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let mut bytes = stream.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            let cut = (next() as usize) % (bytes.len() + 1);
            let _ = decode_all(&bytes[..cut]);
            // Recompute CRCs after mutating headers, so header parsing itself gets exercised.
            if bytes.len() >= MIN_MESSAGE_LEN {
                let total = be_u32(&bytes[0..4]) as usize;
                if (MIN_MESSAGE_LEN..=bytes.len()).contains(&total) {
                    let crc = crc32fast::hash(&bytes[0..8]);
                    bytes[8..12].copy_from_slice(&crc.to_be_bytes());
                    let crc = crc32fast::hash(&bytes[..total - 4]);
                    bytes[total - 4..total].copy_from_slice(&crc.to_be_bytes());
                    let _ = decode_all(&bytes);
                }
            }
        }
    }
}
