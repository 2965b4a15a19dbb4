//! How a provider frames a streamed body, and the decoder for each framing. Every decoder turns
//! network reads (split anywhere) into whole events of the same shape ([`SseEvent`]), so a
//! provider's stream translator never sees framing: SSE events as they are, JSON lines as events
//! with `data` = the line, AWS event-stream messages as events named by their `:event-type`.

use bytes::{Buf, BytesMut};

use crate::sse::{SseDecoder, SseError, SseEvent, MAX_EVENT_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream` (OpenAI, Anthropic, Gemini with `alt=sse`, Mistral, ...).
    Sse,
    /// Newline-delimited JSON (Cohere v1).
    JsonLines,
    /// AWS event-stream binary framing (Bedrock's ConverseStream); see [`AwsEventDecoder`].
    AwsEventStream,
}

impl Framing {
    /// The content type a provider labels a stream of this framing with, for messages.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Sse => "text/event-stream",
            Self::JsonLines => "application/stream+json",
            Self::AwsEventStream => "application/vnd.amazon.eventstream",
        }
    }

    /// Whether a 2xx reply with this `Content-Type` (parameters and case ignored) is a stream of
    /// this framing. JSON lines come under several names (Cohere v1 sends
    /// `application/stream+json`; `application/x-ndjson` and `application/jsonl` are common), so
    /// any `application/...json...` type is taken for them; an SSE or event-stream reply has
    /// exactly one type. A missing type is not a stream.
    pub fn accepts(self, content_type: &str) -> bool {
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match self {
            Self::Sse | Self::AwsEventStream => media_type == self.content_type(),
            Self::JsonLines => {
                media_type.starts_with("application/") && media_type.contains("json")
            }
        }
    }
}

#[derive(Debug)]
pub enum FrameDecoder {
    Sse(SseDecoder),
    Lines(LineDecoder),
    Aws(AwsEventDecoder),
}

impl FrameDecoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Sse => Self::Sse(SseDecoder::new()),
            Framing::JsonLines => Self::Lines(LineDecoder::default()),
            Framing::AwsEventStream => Self::Aws(AwsEventDecoder::default()),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        match self {
            Self::Sse(decoder) => decoder.push(bytes),
            Self::Lines(decoder) => decoder.push(bytes),
            Self::Aws(decoder) => Ok(decoder.push(bytes)),
        }
    }

    pub fn finish(&mut self) -> Option<SseEvent> {
        match self {
            Self::Sse(decoder) => decoder.finish(),
            Self::Lines(decoder) => decoder.finish(),
            Self::Aws(decoder) => decoder.finish(),
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

/// Event name of an AWS event-stream exception (or error) message: this prefix, then its
/// `:exception-type` (or `:error-code`); `data` is its payload (or `:error-message`).
pub const AWS_EXCEPTION_EVENT_PREFIX: &str = ":exception:";
/// Event name for a corrupt AWS event stream (`data` says why); nothing follows it.
pub const AWS_MALFORMED_EVENT: &str = ":malformed";
/// AWS event-stream messages as events: `event` = the `:event-type` header, `data` = the
/// payload. Exceptions and corrupt framing become the reserved events above (names starting
/// with `:`, which no event type does), in stream order, so the events before a failure still
/// reach the translator and the failure carries its own message. The format has no end marker:
/// the translator marks the last event (`EventOutcome::Final`), and `pump_events` reports a body
/// that ends without it as cut.
#[derive(Debug, Default)]
pub struct AwsEventDecoder {
    decoder: crate::providers::bedrock::eventstream::Decoder,
    /// A malformed event was emitted; the rest of the body is ignored.
    failed: bool,
}

impl AwsEventDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.failed {
            return events;
        }
        self.decoder.extend(bytes);
        loop {
            match self.decoder.next_message() {
                Ok(Some(message)) => events.push(aws_event(&message)),
                Ok(None) => break,
                Err(error) => {
                    events.push(self.malformed(error));
                    break;
                }
            }
        }
        events
    }

    /// Nothing at a clean end of the body; a malformed event when it stops mid-message.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.failed {
            return None;
        }
        let error = self.decoder.finish().err()?;
        Some(self.malformed(error))
    }

    fn malformed(
        &mut self,
        error: crate::providers::bedrock::eventstream::DecodeError,
    ) -> SseEvent {
        self.failed = true;
        SseEvent {
            event: Some(AWS_MALFORMED_EVENT.to_owned()),
            data: error.to_string(),
        }
    }
}

fn aws_event(message: &crate::providers::bedrock::eventstream::Message) -> SseEvent {
    let payload = String::from_utf8_lossy(&message.payload).into_owned();
    match message.header_str(":message-type") {
        Some("exception") => SseEvent {
            event: Some(format!(
                "{AWS_EXCEPTION_EVENT_PREFIX}{}",
                message.header_str(":exception-type").unwrap_or("exception")
            )),
            data: payload,
        },
        Some("error") => SseEvent {
            event: Some(format!(
                "{AWS_EXCEPTION_EVENT_PREFIX}{}",
                message.header_str(":error-code").unwrap_or("error")
            )),
            data: message
                .header_str(":error-message")
                .map_or(payload, str::to_owned),
        },
        _ => SseEvent {
            event: message.header_str(":event-type").map(str::to_owned),
            data: payload,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_framing_accepts_its_own_content_types_only() {
        for (framing, accepted, refused) in [
            (
                Framing::Sse,
                &[
                    "text/event-stream",
                    "text/event-stream; charset=utf-8",
                    "Text/Event-Stream",
                ][..],
                &[
                    "application/json",
                    "text/html; charset=utf-8",
                    "text/plain",
                    "",
                ][..],
            ),
            (
                Framing::JsonLines,
                &[
                    "application/stream+json",
                    "application/x-ndjson",
                    "application/json; charset=utf-8",
                ][..],
                &["text/event-stream", "text/html", "text/plain", ""][..],
            ),
            (
                Framing::AwsEventStream,
                &["application/vnd.amazon.eventstream"][..],
                &["application/json", "text/event-stream", ""][..],
            ),
        ] {
            for content_type in accepted {
                assert!(framing.accepts(content_type), "{framing:?} {content_type}");
            }
            for content_type in refused {
                assert!(!framing.accepts(content_type), "{framing:?} {content_type}");
            }
        }
    }

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

    #[test]
    fn aws_event_stream_maps_events_exceptions_and_a_cut_message() {
        use crate::providers::bedrock::eventstream::{encode, encode_event, HeaderValue};
        let text = |v: &str| HeaderValue::String(v.to_owned());
        let mut input = encode_event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        input.extend(encode(
            &[
                (":message-type", text("exception")),
                (":exception-type", text("throttlingException")),
                (":content-type", text("application/json")),
            ],
            br#"{"message":"slow down"}"#,
        ));
        for piece in 1..input.len() {
            let mut decoder = FrameDecoder::new(Framing::AwsEventStream);
            let mut events = Vec::new();
            for chunk in input.chunks(piece) {
                events.extend(decoder.push(chunk).unwrap());
            }
            events.extend(decoder.finish());
            let names: Vec<_> = events.iter().map(|e| e.event.clone().unwrap()).collect();
            assert_eq!(
                names,
                ["contentBlockDelta", ":exception:throttlingException"],
                "piece {piece}"
            );
            assert_eq!(events[1].data, r#"{"message":"slow down"}"#);
        }
        let mut decoder = FrameDecoder::new(Framing::AwsEventStream);
        let mut corrupt = encode_event("messageStop", "{}");
        corrupt[20] ^= 1;
        let events = decoder.push(&corrupt).unwrap();
        assert_eq!(events[0].event.as_deref(), Some(AWS_MALFORMED_EVENT));
        assert_eq!(events[0].data, "message checksum mismatch");
        assert!(decoder
            .push(&encode_event("messageStop", "{}"))
            .unwrap()
            .is_empty());
        assert_eq!(decoder.finish(), None);
        let mut decoder = FrameDecoder::new(Framing::AwsEventStream);
        let whole = encode_event("messageStop", "{}");
        assert!(decoder.push(&whole[..10]).unwrap().is_empty());
        let end = decoder.finish().unwrap();
        assert_eq!(
            (end.event.as_deref(), end.data.as_str()),
            (
                Some(AWS_MALFORMED_EVENT),
                "the stream ended in the middle of a message"
            )
        );
    }
}
