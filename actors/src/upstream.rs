//! Talking HTTP to providers: the pooled client each provider actor builds once, sending a JSON
//! request under the connect / first-byte / idle / total timeouts, reading JSON replies the way
//! MLflow does (content-type rules, error details), and pumping a streamed body into whole SSE
//! events. No provider-specific knowledge lives here, and no credential ever reaches an error:
//! errors are built from statuses, content types and upstream bodies only, never from the
//! request's headers or URL.

use std::time::{Duration, Instant};

use awc::error::{ConnectError, PayloadError, SendRequestError};
use awc::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::error::{ErrorKind, GatewayError};
use crate::framing::{FrameDecoder, Framing};
use crate::provider::UpstreamSettings;
use crate::sse::SseEvent;

/// Builds the client a provider actor keeps for its lifetime: keep-alive pooling, no connection
/// cap (awc's default of 100 would silently queue requests under load), TLS through rustls, and
/// no redirects (as MLflow).
pub fn build_client(settings: &UpstreamSettings) -> awc::Client {
    let connector = awc::Connector::new()
        .limit(0)
        .timeout(settings.connect_timeout)
        .conn_keep_alive(Duration::from_secs(60))
        .conn_lifetime(Duration::from_secs(300));
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        // awc's own timeout covers sending the request and receiving the response head.
        .timeout(settings.first_byte_timeout.min(settings.total_timeout))
        .finish()
}

/// A provider's response head with its body still to read (awc's default payload type: we never
/// ask for compressed bodies, so none needs decoding).
pub type UpstreamResponse = awc::ClientResponse;

/// A provider response's body stream, without its head.
pub type UpstreamBody = actix_web::dev::Payload;

/// A provider request, ready to send.
#[derive(Clone)]
pub struct UpstreamRequest {
    pub url: String,
    /// Header name and value; values are secrets as often as not, so they are never logged.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Header values are credentials: `Debug` shows only their names.
impl std::fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("UpstreamRequest")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Sends the request and waits for the response head.
pub async fn send(
    client: &awc::Client,
    request: UpstreamRequest,
) -> Result<UpstreamResponse, GatewayError> {
    let mut builder = client
        .post(&request.url)
        .insert_header((CONTENT_TYPE, "application/json"));
    for (name, value) in &request.headers {
        builder =
            builder.insert_header((HeaderName::from_static(name), header_value(name, value)?));
    }
    builder.send_body(request.body).await.map_err(send_error)
}

/// A provider header's value, marked sensitive: `Debug` then prints `Sensitive` instead of the
/// value, and awc traces its HTTP/2 request heads with `Debug` (`RUST_LOG=trace`).
fn header_value(name: &str, value: &str) -> Result<HeaderValue, GatewayError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        // Config loading refuses control characters in keys; this is a last guard.
        GatewayError::internal(format!("invalid value for upstream header '{name}'"))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn send_error(error: SendRequestError) -> GatewayError {
    match error {
        SendRequestError::Timeout => GatewayError::new(
            ErrorKind::UpstreamTimeout,
            504,
            "The provider did not answer in time.",
        ),
        SendRequestError::Connect(ConnectError::Timeout) => GatewayError::new(
            ErrorKind::UpstreamTimeout,
            504,
            "Timed out connecting to the provider.",
        ),
        SendRequestError::Connect(err) => GatewayError::new(
            ErrorKind::UpstreamConnect,
            502,
            format!(
                "Could not connect to the provider: {}",
                describe_connect_error(&err)
            ),
        ),
        other => GatewayError::new(
            ErrorKind::UpstreamConnect,
            502,
            format!(
                "The request to the provider failed: {}",
                short(&other.to_string())
            ),
        ),
    }
}

/// Connect errors can embed the resolved host; keep the kind, not the address.
fn describe_connect_error(error: &ConnectError) -> &'static str {
    match error {
        ConnectError::Resolver(_) => "name resolution failed",
        ConnectError::NoRecords => "the host name has no address",
        ConnectError::Timeout => "timed out",
        ConnectError::Unresolved => "the address could not be resolved",
        ConnectError::Io(_) => "connection refused or reset",
        ConnectError::Disconnected => "the connection was closed",
        _ => "TLS or protocol failure",
    }
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Reads a whole (non-streamed) body under the idle and total limits, and the size cap.
pub async fn read_body(
    response: &mut UpstreamResponse,
    settings: &UpstreamSettings,
    deadline: Instant,
) -> Result<Bytes, GatewayError> {
    let mut body = bytes::BytesMut::new();
    loop {
        let next = next_chunk(response, settings, deadline).await?;
        let Some(chunk) = next else { break };
        if body.len() + chunk.len() > settings.max_response_bytes {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                502,
                format!(
                    "The provider's response is larger than {} bytes.",
                    settings.max_response_bytes
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The next body chunk, bounded by the idle gap and the total deadline.
async fn next_chunk<B>(
    body: &mut B,
    settings: &UpstreamSettings,
    deadline: Instant,
) -> Result<Option<Bytes>, GatewayError>
where
    B: futures_util::Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let now = Instant::now();
    let remaining = deadline.saturating_duration_since(now);
    let wait = settings.idle_timeout.min(remaining);
    match tokio::time::timeout(wait, body.next()).await {
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(error))) => Err(payload_error(error)),
        Ok(None) => Ok(None),
        Err(_) if remaining <= settings.idle_timeout => Err(GatewayError::new(
            ErrorKind::UpstreamTimeout,
            504,
            "The provider did not finish within the total timeout.",
        )),
        Err(_) => Err(GatewayError::new(
            ErrorKind::UpstreamTimeout,
            504,
            "The provider stopped sending data (idle timeout).",
        )),
    }
}

fn payload_error(error: PayloadError) -> GatewayError {
    let reason = match error {
        PayloadError::Incomplete(_) => "the connection closed before the response was complete",
        PayloadError::Overflow => "the response was too large",
        _ => "the response body could not be read",
    };
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        502,
        format!("The provider's response failed: {reason}."),
    )
}

fn content_type(response: &UpstreamResponse) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Reads a JSON reply as MLflow does: JSON content types parse; `text/plain` becomes
/// `{"message": text}`; anything else is 502 even on 2xx. A status ≥ 400 becomes an
/// [`ErrorKind::UpstreamStatus`] error carrying the same status and the upstream's detail.
pub async fn read_json(
    response: UpstreamResponse,
    settings: &UpstreamSettings,
    deadline: Instant,
) -> Result<Value, GatewayError> {
    parse_json(&read_json_bytes(response, settings, deadline).await?)
}

/// [`read_json`] without parsing a successful reply: its JSON text, for a provider that reads
/// it straight into its own types (a `text/plain` reply arrives as `{"message": text}`).
pub async fn read_json_bytes(
    mut response: UpstreamResponse,
    settings: &UpstreamSettings,
    deadline: Instant,
) -> Result<Bytes, GatewayError> {
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let retry_after = retry_after(&response);
    let body = read_body(&mut response, settings, deadline).await?;
    if status >= 400 {
        let mut error = status_error(status, &decode_body(&content_type, &body)?);
        error.retry_after = retry_after;
        return Err(error);
    }
    if is_json(&content_type) {
        return Ok(body);
    }
    Ok(Bytes::from(decode_body(&content_type, &body)?.to_string()))
}

fn is_json(content_type: &str) -> bool {
    let lowered = content_type.to_ascii_lowercase();
    lowered.contains("application/json")
        || (lowered.starts_with("application/") && lowered.contains("+json"))
}

fn invalid_json() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        502,
        "The provider answered with invalid JSON.",
    )
}

/// A JSON reply's text as a value; text that is not JSON is a 502.
pub fn parse_json(body: &[u8]) -> Result<Value, GatewayError> {
    serde_json::from_slice(body).map_err(|_| invalid_json())
}

/// Content-type rules for an upstream body (pure).
pub fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, GatewayError> {
    if is_json(content_type) {
        parse_json(body)
    } else if content_type.to_ascii_lowercase().contains("text/plain") {
        Ok(json!({ "message": String::from_utf8_lossy(body) }))
    } else {
        Err(GatewayError::new(
            ErrorKind::UpstreamContentType,
            502,
            format!("The returned data type from the route service is not supported. Received content type: {content_type}"),
        ))
    }
}

/// MLflow's detail for an upstream error: `error.message` when present, else the whole body.
pub fn status_error(status: u16, body: &Value) -> GatewayError {
    let detail = match body.get("error") {
        Some(Value::Object(error)) => error
            .get("message")
            .cloned()
            .unwrap_or_else(|| body.clone()),
        // MLflow crashes (500) on a string `error`; the string itself is the useful detail.
        Some(Value::String(message)) => Value::String(message.clone()),
        _ => body.clone(),
    };
    GatewayError::new(ErrorKind::UpstreamStatus, status, detail)
}

fn retry_after(response: &UpstreamResponse) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// For streaming calls: a non-2xx status is read and turned into an error before any byte is
/// sent to the client, so the client gets a real status instead of a broken stream. So is a 2xx
/// reply that is not a stream of the provider's `framing` (an `application/json` completion or
/// an HTML error page from a proxy): a 502 naming the content type, rather than a 200 stream that
/// then fails.
pub async fn check_stream_status(
    response: UpstreamResponse,
    settings: &UpstreamSettings,
    deadline: Instant,
    framing: Framing,
) -> Result<UpstreamResponse, GatewayError> {
    if response.status().as_u16() >= 400 {
        return Err(match read_json(response, settings, deadline).await {
            Err(error) => error,
            Ok(_) => GatewayError::new(ErrorKind::UpstreamStatus, 502, "The provider failed."),
        });
    }
    let content_type = content_type(&response);
    if !framing.accepts(&content_type) {
        return Err(not_a_stream(&content_type, framing));
    }
    Ok(response)
}

/// The 502 for a stream request answered with something other than a stream.
pub fn not_a_stream(content_type: &str, framing: Framing) -> GatewayError {
    let received = if content_type.is_empty() {
        "no content type".to_owned()
    } else {
        format!("content type '{}'", short(content_type))
    };
    GatewayError::new(
        ErrorKind::UpstreamContentType,
        502,
        format!(
            "The provider answered a stream request with {received} instead of '{}'.",
            framing.content_type()
        ),
    )
}

/// What a per-event translator says about one upstream event.
#[derive(Debug)]
pub enum EventOutcome {
    /// Forward this serialised unified chunk.
    Chunk(crate::messages::StreamChunk),
    /// Nothing to forward (keep-alives, metadata events).
    Skip,
    /// The upstream said the stream is complete (`[DONE]`, `message_stop`).
    Done,
    /// Forward this chunk, which the upstream marked as completing the stream (Cohere's
    /// `is_finished`, Gemini's last `finishReason`). Unlike [`EventOutcome::Done`] the body is
    /// still read to its end, since such providers may send more (usage) after it.
    Final(crate::messages::StreamChunk),
}

/// Pumps an upstream streamed body (SSE or JSON lines) into the client channel, one translated
/// event at a time, until the upstream ends, fails, or the client goes away (a failed send drops
/// the upstream response, which closes its connection). Mid-stream failures become a final `Err`
/// item.
pub async fn pump_events<F>(
    mut response: UpstreamResponse,
    settings: UpstreamSettings,
    deadline: Instant,
    sender: crate::messages::ChunkSender,
    framing: Framing,
    end_marker_required: bool,
    mut translate: F,
) where
    F: FnMut(&SseEvent) -> Result<EventOutcome, GatewayError>,
{
    // Only the body is read from here on; the response head (its header map is a few KiB) is
    // not kept for the whole life of a long stream.
    let mut body = actix_web::HttpMessage::take_payload(&mut response);
    drop(response);
    let mut decoder = FrameDecoder::new(framing);
    // Set once a `Final` chunk has gone out: the body may then end without a marker.
    let mut completed = false;
    loop {
        // A client that leaves while the upstream is silent must still free the upstream
        // connection at once, not at the next upstream byte or the idle timeout.
        let next = tokio::select! {
            biased;
            _ = sender.closed() => {
                tracing::debug!("stream stopped: client went away");
                return;
            }
            next = next_chunk(&mut body, &settings, deadline) => next,
        };
        let events = match next {
            Ok(Some(bytes)) => match decoder.push(&bytes) {
                Ok(events) => events,
                Err(_) => {
                    let error = GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        502,
                        "The provider sent an oversized stream event.",
                    );
                    let _ = sender.send(Err(Box::new(error))).await;
                    return;
                }
            },
            Ok(None) => {
                // End of body: flush a final unterminated event, then stop.
                if let Some(event) = decoder.finish() {
                    match forward(&sender, translate(&event)).await {
                        Flow::Stop | Flow::Complete => return,
                        Flow::Completed => completed = true,
                        Flow::Continue => {}
                    }
                }
                // awc reports a connection closed mid-body the same way as a complete body, so a
                // protocol with an end marker (`[DONE]`) tells the two apart: without the marker
                // the stream was cut, and the client must not mistake it for a finished answer.
                if end_marker_required && !completed {
                    let _ = sender.send(Err(Box::new(stream_cut()))).await;
                }
                return;
            }
            Err(error) => {
                let _ = sender.send(Err(Box::new(error))).await;
                return;
            }
        };
        for event in &events {
            match forward(&sender, translate(event)).await {
                Flow::Continue => {}
                Flow::Completed => completed = true,
                Flow::Stop => return,
                Flow::Complete => {
                    // The client's stream ends now; only then is the rest of the body read.
                    drop(sender);
                    drain_for_reuse(&mut body, &settings).await;
                    return;
                }
            }
        }
    }
}

/// The 502 ending a stream whose body stopped before the provider marked it complete.
pub fn stream_cut() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        502,
        "The provider's stream ended before it was complete.",
    )
}

enum Flow {
    Continue,
    /// A chunk that completes the stream went out; the body is read on to its end.
    Completed,
    /// The stream failed or the client left: the upstream connection is dropped.
    Stop,
    /// The provider marked the stream complete.
    Complete,
}

/// Most bytes read after a stream's end marker to keep its connection.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024;
/// Longest wait for the rest of a body after a stream's end marker.
const DRAIN_LIMIT_TIME: Duration = Duration::from_millis(500);

/// Reads what follows a stream's end marker (usually only HTTP's last-chunk frame, already
/// buffered) so the connection returns to the pool: dropping a response whose body is
/// unfinished closes its connection, and opening a new one per stream costs more CPU than the
/// whole translation. A provider that keeps sending after its end marker loses the connection.
async fn drain_for_reuse(body: &mut UpstreamBody, settings: &UpstreamSettings) {
    let wait = DRAIN_LIMIT_TIME.min(settings.idle_timeout);
    let mut drained = 0;
    let drain = async {
        while let Some(Ok(chunk)) = body.next().await {
            drained += chunk.len();
            if drained > DRAIN_LIMIT_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(wait, drain).await;
}

/// Sends one chunk to the client: `then` when it went, [`Flow::Stop`] when the client is gone.
async fn send_chunk(
    sender: &crate::messages::ChunkSender,
    chunk: crate::messages::StreamChunk,
    then: Flow,
) -> Flow {
    if sender.send(Ok(chunk)).await.is_err() {
        tracing::debug!("stream stopped: client went away");
        Flow::Stop
    } else {
        then
    }
}

async fn forward(
    sender: &crate::messages::ChunkSender,
    outcome: Result<EventOutcome, GatewayError>,
) -> Flow {
    match outcome {
        Ok(EventOutcome::Chunk(chunk)) => send_chunk(sender, chunk, Flow::Continue).await,
        Ok(EventOutcome::Final(chunk)) => send_chunk(sender, chunk, Flow::Completed).await,
        Ok(EventOutcome::Skip) => Flow::Continue,
        Ok(EventOutcome::Done) => Flow::Complete,
        Err(error) => {
            let _ = sender.send(Err(Box::new(error))).await;
            Flow::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_follows_mlflow() {
        let e = status_error(
            401,
            &json!({"error": {"message": "Incorrect API key provided", "type": "x"}}),
        );
        assert_eq!(
            (e.status, e.detail),
            (401, json!("Incorrect API key provided"))
        );
        let e = status_error(400, &json!({"message": "Too many tokens"}));
        assert_eq!(e.detail, json!({"message": "Too many tokens"}));
        let e = status_error(500, &json!({"error": "boom"}));
        assert_eq!(e.detail, json!("boom"));
        assert!(e.retryable());
    }

    #[test]
    fn content_types_follow_mlflow() {
        assert_eq!(
            decode_body("application/json; charset=utf-8", b"{\"a\":1}").unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            decode_body("text/plain", b"oops").unwrap(),
            json!({"message": "oops"})
        );
        let e = decode_body("text/html; charset=utf-8", b"<html>").unwrap_err();
        assert_eq!((e.status, e.kind), (502, ErrorKind::UpstreamContentType));
        assert_eq!(
            e.detail,
            json!("The returned data type from the route service is not supported. Received content type: text/html; charset=utf-8")
        );
        let e = decode_body("application/json", b"{nope").unwrap_err();
        assert_eq!((e.status, e.kind), (502, ErrorKind::UpstreamProtocol));
    }

    #[test]
    fn provider_header_values_never_show_in_debug_output() {
        let value = header_value("authorization", "Bearer sk-secret").unwrap();
        assert_eq!(format!("{value:?}"), "Sensitive");
        let mut headers = awc::http::header::HeaderMap::new();
        headers.insert(awc::http::header::AUTHORIZATION, value);
        assert!(!format!("{headers:?}").contains("sk-secret"));
        assert!(header_value("x", "a\nb").is_err());
    }

    #[test]
    fn a_reply_that_is_not_a_stream_names_its_content_type() {
        let e = not_a_stream("application/json; charset=utf-8", Framing::Sse);
        assert_eq!((e.status, e.kind), (502, ErrorKind::UpstreamContentType));
        assert_eq!(
            e.detail,
            json!("The provider answered a stream request with content type 'application/json; charset=utf-8' instead of 'text/event-stream'.")
        );
        assert_eq!(
            not_a_stream("", Framing::AwsEventStream).detail,
            json!("The provider answered a stream request with no content type instead of 'application/vnd.amazon.eventstream'.")
        );
    }
}
