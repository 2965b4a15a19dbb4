//! Server-sent-event framing, pure: bytes in as they arrive from the network, whole events out.
//!
//! Read boundaries are arbitrary (a TCP read can end mid-line or mid-UTF-8 character), so bytes
//! are buffered until a blank line completes an event; only then is it decoded. Lines may end in
//! `\n`, `\r\n` or `\r`, as the SSE specification allows.

use std::borrow::Cow;

use bytes::{Buf, BytesMut};

/// One complete event. `data` joins multiple `data:` lines with `\n`, per the specification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Largest event we buffer; an upstream that never ends an event cannot exhaust memory.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of a line that has not ended yet (usually empty between reads).
    buffer: BytesMut,
    pending: PendingEvent,
}

/// Fields of the event being assembled from already-complete lines.
#[derive(Debug, Default)]
struct PendingEvent {
    event: Option<String>,
    /// `data:` lines joined with `\n` as they arrive.
    data: String,
    has_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    EventTooLarge,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one network read; returns every event it completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        if self.buffer.is_empty() {
            // Reads usually end on an event boundary: decode straight from the read and keep
            // only an unfinished line, instead of copying every read into the buffer first.
            let consumed = self.pending.take_lines(bytes, &mut events);
            self.buffer.extend_from_slice(&bytes[consumed..]);
        } else {
            self.buffer.extend_from_slice(bytes);
            let consumed = self.pending.take_lines(&self.buffer, &mut events);
            self.buffer.advance(consumed);
        }
        if self.buffer.len() > MAX_EVENT_BYTES || self.pending.data.len() > MAX_EVENT_BYTES {
            return Err(SseError::EventTooLarge);
        }
        Ok(events)
    }

    /// The stream ended: a last event without its blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buffer.is_empty() {
            let line = self.buffer.split();
            if let Some(event) = self.pending.take_line(&line) {
                return Some(event);
            }
        }
        self.pending.dispatch()
    }
}

impl PendingEvent {
    /// Takes every complete line of `bytes`, pushing the events they complete; returns how
    /// many bytes were consumed (the rest is an unfinished line).
    fn take_lines(&mut self, bytes: &[u8], events: &mut Vec<SseEvent>) -> usize {
        let mut consumed = 0;
        while let Some((line_len, terminator_len)) = find_line(&bytes[consumed..]) {
            let line = &bytes[consumed..consumed + line_len];
            consumed += line_len + terminator_len;
            if let Some(event) = self.take_line(line) {
                events.push(event);
            }
        }
        consumed
    }

    fn take_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // a comment (keep-alive)
        }
        // Valid UTF-8 is the rule; only a broken line pays for the lossy copy.
        let text = match std::str::from_utf8(line) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        let (field, value) = match text.find(':') {
            Some(i) => {
                let value = &text[i + 1..];
                (&text[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields do not matter to a proxy
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        Some(SseEvent { event, data })
    }
}

/// Finds the first line ending: returns (line length, terminator length).
fn find_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let position = memchr::memchr2(b'\n', b'\r', buffer)?;
    if buffer[position] == b'\n' {
        return Some((position, 1));
    }
    // A lone `\r` at the end of the buffer may be the first half of `\r\n`: wait for more.
    match buffer.get(position + 1) {
        Some(b'\n') => Some((position, 2)),
        Some(_) => Some((position, 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in input.chunks(piece) {
            events.extend(decoder.push(chunk).unwrap());
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn events_are_the_same_whatever_the_read_boundaries() {
        let input =
            "data: {\"a\":\"é\"}\n\nevent: ping\ndata: x\ndata: y\n\n: comment\n\ndata: [DONE]\n\n"
                .as_bytes();
        let expected = vec![
            SseEvent {
                event: None,
                data: "{\"a\":\"é\"}".into(),
            },
            SseEvent {
                event: Some("ping".into()),
                data: "x\ny".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(input, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let input = b"data: one\r\n\r\ndata: two\r\rdata:three\n\n";
        for piece in 1..input.len() {
            let events = decode_in_pieces(input, piece);
            let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["one", "two", "three"], "piece size {piece}");
        }
    }

    #[test]
    fn a_final_event_without_a_blank_line_is_kept() {
        assert_eq!(
            decode_in_pieces(b"data: last", 3),
            vec![SseEvent {
                event: None,
                data: "last".into()
            }]
        );
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut decoder = SseDecoder::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(decoder.push(&big), Err(SseError::EventTooLarge));
    }
}
