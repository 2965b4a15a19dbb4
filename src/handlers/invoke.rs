//! What every invocation path shares once it knows its target: reading the body under the size
//! limit, sending the one `Invoke` message to the provider actor, and writing the reply as JSON
//! or as a server-sent event stream.

use actix_web::http::header::{self, ContentEncoding};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderName, HeaderValue};
use switchyard_actors::dispatch::{EndpointTarget, Target};
use switchyard_actors::error::{ErrorKind, GatewayError};
use switchyard_actors::limits::{self, Decision, RateLimiter};
use switchyard_actors::messages::{ChunkReceiver, Invoke, InvokeReply};
use switchyard_actors::schema::{self, UnifiedRequest};

use crate::error::{error_response, openai_error, ApiFamily};

/// Reads the whole body, refusing with 413 as soon as it passes `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, GatewayError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| {
            GatewayError::new(
                ErrorKind::Validation,
                400,
                format!("Could not read the request body: {err}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(GatewayError::new(
                ErrorKind::PayloadTooLarge,
                413,
                format!("The request body is larger than the limit of {limit} bytes."),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads and parses a JSON object body (422 in MLflow's shape when it is not one).
pub async fn read_json(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<serde_json::Value, GatewayError> {
    let body = read_body(payload, limit).await?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    schema::parse_json_body(content_type, &body)
}

/// Counts the request against the chosen endpoint's rate limit, sends it to that endpoint's
/// provider actor, and renders the reply. `client_key` is who the request counts against.
pub async fn invoke(
    target: &Target,
    request: UnifiedRequest,
    family: ApiFamily,
    limiter: &RateLimiter,
    client_key: &str,
) -> HttpResponse {
    let endpoint = match target.pick_endpoint() {
        Ok(endpoint) => endpoint,
        Err(error) => return error_response(&error, family),
    };
    // One counter per endpoint, whichever path or route reached it; checked after validation
    // (a 422 costs no quota) and before the provider is called (a 429 never reaches it).
    let decision = match &endpoint.endpoint.limit {
        Some(limit) => {
            let decision = limiter
                .check(&endpoint.endpoint.name, client_key, limit)
                .await;
            if !decision.allowed {
                let mut error =
                    GatewayError::new(ErrorKind::RateLimited, 429, limits::exceeded_message(limit));
                error.retry_after = Some(Duration::from_secs(decision.retry_after_secs()));
                let mut response = error_response(&error, family);
                rate_limit_headers(&mut response, &decision);
                return response;
            }
            Some(decision)
        }
        None => None,
    };
    let mut response = match call_provider(&endpoint, request).await {
        Ok(InvokeReply::Json(body)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Ok(InvokeReply::Stream(chunks)) => event_stream(chunks, family),
        Err(error) => {
            log_failure(&error);
            error_response(&error, family)
        }
    };
    if let Some(decision) = decision {
        rate_limit_headers(&mut response, &decision);
    }
    response
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix time of the window's end, as slowapi).
fn rate_limit_headers(response: &mut HttpResponse, decision: &Decision) {
    let reset = SystemTime::now()
        .checked_add(Duration::from_millis(decision.reset_after_ms))
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", decision.limit),
        ("x-ratelimit-remaining", decision.remaining),
        ("x-ratelimit-reset", reset),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

async fn call_provider(
    endpoint: &EndpointTarget,
    request: UnifiedRequest,
) -> Result<InvokeReply, GatewayError> {
    // Held until the reply arrives: if the client disconnects first, this handler future is
    // dropped with it, and the provider stops waiting on the upstream.
    let (_client_present, cancelled) = tokio::sync::oneshot::channel::<()>();
    endpoint
        .provider
        .send(Invoke { request, cancelled })
        .await
        .map_err(|_| {
            GatewayError::new(
                ErrorKind::Unavailable,
                503,
                format!(
                    "The endpoint '{}' is being reconfigured; retry the request.",
                    endpoint.endpoint.name
                ),
            )
        })?
}

fn log_failure(error: &GatewayError) {
    match error.origin() {
        switchyard_actors::error::Origin::Client => {
            tracing::debug!(
                kind = error.kind.label(),
                status = error.status,
                "request refused"
            )
        }
        _ => tracing::warn!(
            kind = error.kind.label(),
            status = error.status,
            "request failed: {}",
            error.message()
        ),
    }
}

/// `text/event-stream` with one `data:` event per chunk, sent as soon as each arrives. A failure
/// mid-stream becomes a final event carrying an error object; `/v1` streams end with
/// `data: [DONE]` only when they completed (never after an error: that would be a fake finish).
pub fn event_stream(chunks: ChunkReceiver, family: ApiFamily) -> HttpResponse {
    enum State {
        Open(ChunkReceiver),
        Done,
    }
    let body = futures_util::stream::unfold(State::Open(chunks), move |state| async move {
        let State::Open(mut chunks) = state else {
            return None;
        };
        match chunks.recv().await {
            Some(Ok(chunk)) => Some((
                Ok::<_, actix_web::Error>(frame(&chunk)),
                State::Open(chunks),
            )),
            Some(Err(error)) => {
                log_failure(&error);
                let event = serde_json::to_vec(&openai_error(&error)).unwrap_or_default();
                Some((Ok(frame(&event)), State::Done))
            }
            None if family == ApiFamily::OpenAi => {
                Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), State::Done))
            }
            None => None,
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header(ContentEncoding::Identity)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

fn frame(json: &[u8]) -> Bytes {
    let mut event = BytesMut::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json);
    event.extend_from_slice(b"\n\n");
    event.freeze()
}
