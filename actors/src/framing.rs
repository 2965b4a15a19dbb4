//! How a provider frames a streamed body, and the decoder for each framing. Every decoder turns
//! network reads (split anywhere) into whole events of the same shape ([`SseEvent`]), so a
//! provider's stream translator never sees framing: SSE events as they are, JSON lines as events
//! with `data` = the line.

use bytes::{Buf, BytesMut};

use crate::sse::{SseDecoder, SseError, SseEvent, MAX_EVENT_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream` (OpenAI, Anthropic, Gemini with `alt=sse`, Mistral, ...).
    Sse,
    /// Newline-delimited JSON (Cohere v1).
    JsonLines,
}

#[derive(Debug)]
pub enum FrameDecoder {
    Sse(SseDecoder),
    Lines(LineDecoder),
}

impl FrameDecoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Sse => Self::Sse(SseDecoder::new()),
            Framing::JsonLines => Self::Lines(LineDecoder::default()),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        match self {
            Self::Sse(decoder) => decoder.push(bytes),
            Self::Lines(decoder) => decoder.push(bytes),
        }
    }

    pub fn finish(&mut self) -> Option<SseEvent> {
        match self {
            Self::Sse(decoder) => decoder.finish(),
            Self::Lines(decoder) => decoder.finish(),
        }
    }
}

/// Newline-delimited records; blank lines are skipped, `\r\n` accepted.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buffer: BytesMut,
}

impl LineDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line = self.buffer.split_to(end);
            self.buffer.advance(1);
            if let Some(event) = line_event(&line) {
                events.push(event);
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(SseError::EventTooLarge);
        }
        Ok(events)
    }

    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = self.buffer.split();
        line_event(&rest)
    }
}

fn line_event(line: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    (!text.is_empty()).then(|| SseEvent {
        event: None,
        data: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_survive_any_read_boundary() {
        let input = "{\"a\":1}\r\n\n{\"b\":\"é\"}\n{\"c\":3}".as_bytes();
        for piece in 1..input.len() {
            let mut decoder = FrameDecoder::new(Framing::JsonLines);
            let mut data = Vec::new();
            for chunk in input.chunks(piece) {
                data.extend(decoder.push(chunk).unwrap().into_iter().map(|e| e.data));
            }
            data.extend(decoder.finish().map(|e| e.data));
            assert_eq!(
                data,
                ["{\"a\":1}", "{\"b\":\"é\"}", "{\"c\":3}"],
                "piece {piece}"
            );
        }
    }
}
