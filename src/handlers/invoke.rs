//! What every invocation path shares once it knows its target: reading the body under the size
//! limit, sending the one `Invoke` message to the provider actor, and writing the reply as JSON
//! or as a server-sent event stream.

use actix_web::http::header::{self, ContentEncoding};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderName, HeaderValue};
use switchyard_actors::breaker::Breakers;
use switchyard_actors::config::EndpointType;
use switchyard_actors::dispatch::{EndpointTarget, Target};
use switchyard_actors::error::{ErrorKind, GatewayError, Origin};
use switchyard_actors::limits::{self, Decision, RateLimiter};
use switchyard_actors::messages::{ChunkReceiver, Invoke, InvokeReply};
use switchyard_actors::schema::{self, UnifiedRequest};

use crate::client_socket::ClientSocket;
use crate::error::{error_response, openai_error, ApiFamily};
use crate::observe::{RequestRecord, TokenCharge};
use crate::shutdown::GraceEnd;

/// Reads the whole body, refusing with 413 as soon as it passes `limit` bytes (before reading
/// anything when its declared `Content-Length` already does, so an `Expect: 100-continue`
/// client gets the 413 instead of `100 Continue`), with 415 when it is compressed, and with
/// 408 when it has not all arrived within the worker's body timeout.
pub async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            413,
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    };
    refuse_encoded_body(request)?;
    let declared = declared_length(request);
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let state = request.app_data::<web::Data<super::WorkerState>>();
    let timeout = state.map_or(DEFAULT_BODY_TIMEOUT, |state| state.body_timeout);
    let busy = state.map(|state| {
        (
            state.busy_body_timeout.min(timeout),
            &*state.connection_load,
        )
    });
    let read = async {
        // Sized once from the declared length: a body read into a growing buffer leaves the
        // buffers it outgrew (as much again as the body) resident while it is parsed. Fresh pages
        // are committed by the OS as the bytes arrive, so a client that declares much and sends
        // little costs about what it sends.
        let mut body =
            BytesMut::with_capacity(declared.map_or(0, |length| length.min(limit as u64) as usize));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| {
                GatewayError::new(
                    ErrorKind::Validation,
                    400,
                    format!("Could not read the request body: {err}"),
                )
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    // One deadline for the whole body, not a gap between reads: a client sending a byte every
    // few seconds never leaves a long gap, but must not hold its connection forever. It is the
    // shorter, busy one whenever connections fill most of the cap, checked as the read goes on,
    // so clients already reading give up their slots too.
    let started = Instant::now();
    let mut read = std::pin::pin!(read);
    let mut check = tokio::time::interval(BODY_DEADLINE_CHECK_EVERY);
    loop {
        tokio::select! {
            biased;
            body = &mut read => return body,
            _ = check.tick() => {
                let (deadline, why) = match &busy {
                    Some((short, load)) if load.busy() => {
                        (*short, " (the gateway is near its connection cap)")
                    }
                    _ => (timeout, ""),
                };
                if started.elapsed() >= deadline {
                    return Err(GatewayError::new(
                        ErrorKind::BodyTimeout,
                        408,
                        format!(
                            "The request body did not arrive within {} ms{why}.",
                            deadline.as_millis()
                        ),
                    ));
                }
            }
        }
    }
}

/// How often a body still arriving is checked against its deadline (so a deadline is kept to
/// within this).
const BODY_DEADLINE_CHECK_EVERY: Duration = Duration::from_millis(100);

/// The body timeout when a handler runs without the worker state (unit tests).
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `Content-Length` the client declared, when it declared a readable one.
fn declared_length(request: &HttpRequest) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Refuses a body sent with any `Content-Encoding` but `identity`, known or not. `web::Payload`
/// hands over the bytes as sent, so a gzip body would reach the JSON parser compressed; and
/// decoding it would let a small body expand past the limit (a gzip bomb), so none is taken.
fn refuse_encoded_body(request: &HttpRequest) -> Result<(), GatewayError> {
    let refuse = |shown: &str| {
        GatewayError::new(
            ErrorKind::UnsupportedEncoding,
            415,
            format!(
                "Content-Encoding '{shown}' is not supported; send the request body uncompressed."
            ),
        )
    };
    for value in request.headers().get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(refuse("(unreadable)"));
        };
        let mut encodings = text.split(',').map(str::trim);
        if let Some(encoding) =
            encodings.find(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        {
            // The name is the client's own text: echoed only when it is a short plain token.
            let plain = encoding.len() <= 32
                && encoding
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            return Err(refuse(if plain { encoding } else { "(unreadable)" }));
        }
    }
    Ok(())
}

/// Bodies up to this size are parsed and validated on the worker; larger ones on actix's blocking
/// pool. Checking a 16 MiB body takes tens of milliseconds (it held a worker, and the `/health`
/// calls queued behind it, for 1.4 s when it was built into a tree); under 64 KiB it is well under
/// a millisecond, less than the hand-off to another thread is worth.
const PARSE_ON_WORKER_MAX_BYTES: usize = 64 * 1024;

/// Bodies from this size on are followed by a collection of the worker's heap (see
/// [`release_outgrown_buffers`]); below it the outgrown buffers are too small to matter.
const COLLECT_AFTER_BYTES: usize = 1024 * 1024;

/// Reads and parses a JSON object body as a tree of at most `max_nodes` values (422 in MLflow's
/// shape when it is not an object, 413 past the limits).
pub async fn read_json(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    max_nodes: usize,
) -> Result<serde_json::Value, GatewayError> {
    let body = read_body(request, payload, limit).await?;
    schema::parse_json_value(content_type(request), &body, max_nodes)
}

/// Reads a request body and validates it for an endpoint of type `kind`: unknown top-level keys
/// stay JSON text, and the values built into a tree are counted against `max_nodes` before any
/// is built. A large body is handled off the worker thread, so the worker keeps serving others.
pub async fn read_request(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    max_nodes: usize,
    kind: EndpointType,
) -> Result<UnifiedRequest, GatewayError> {
    let body = read_body(request, payload, limit).await?;
    let content_type = content_type(request).map(str::to_owned);
    let on_worker = body.len() <= PARSE_ON_WORKER_MAX_BYTES;
    if body.len() >= COLLECT_AFTER_BYTES {
        release_outgrown_buffers();
    }
    // The body moves into the job; a large unknown key may keep a share of it (no copy).
    let validate = move || {
        let object = schema::parse_request_body(content_type.as_deref(), &body, max_nodes)?;
        drop(body);
        UnifiedRequest::from_body(kind, object)
    };
    if on_worker {
        return validate();
    }
    web::block(validate)
        .await
        .map_err(|_| GatewayError::internal("the request body could not be parsed"))?
}

/// A body read in pieces grows its buffer by doubling, and the buffers it outgrew (as much again
/// as the body) stay resident in mimalloc's heap for this thread until it is collected; collect
/// once after a large body, before the upstream body is written, so they do not add up with it
/// (a 16 MiB body otherwise peaked at 3x its size). Pre-sizing the buffer from `Content-Length`
/// avoids most of the growth; a chunked body still grows.
fn release_outgrown_buffers() {
    // SAFETY: `mi_collect` only returns this thread's free pages to the OS; it takes no pointer
    // and is safe to call at any time, with or without mimalloc as the global allocator.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

fn content_type(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// What every invocation shares besides the request: the per-process limiter and breakers, and
/// who the request counts against.
pub struct InvokeContext<'a> {
    pub family: ApiFamily,
    pub limiter: &'a Arc<RateLimiter>,
    pub breakers: &'a Breakers,
    pub client_key: &'a str,
    /// SSE comment interval while a provider is silent (zero: none).
    pub heartbeat: Duration,
    /// The client's connection, watched for a hang-up while the provider works.
    pub client: Option<ClientSocket>,
    /// The end of the SIGTERM grace period: a reply still awaited then becomes a 503.
    pub grace_end: &'a GraceEnd,
}

/// Runs one request to completion: for each candidate endpoint (one, or a route's destinations
/// when it falls back), count it against that endpoint's rate limit, respect its circuit
/// breaker, call its provider actor with the endpoint's retry policy, and render the reply.
/// Retries and fallback only ever happen before the first byte reaches the client. `record`
/// is finished when the response (or, for a stream, its last event) has gone out.
pub async fn invoke(
    target: &Target,
    request: UnifiedRequest,
    ctx: &InvokeContext<'_>,
    mut record: RequestRecord,
) -> HttpResponse {
    let candidates = match target.candidates() {
        Ok(candidates) => candidates,
        Err(error) => return failed(&error, ctx.family, record),
    };
    let last = candidates.len() - 1;
    let mut request = Some(request);
    let mut failure = None;
    for (position, endpoint) in candidates.iter().enumerate() {
        let Some(this_request) = (if position == last {
            request.take()
        } else {
            request.clone()
        }) else {
            break;
        };
        record.served_by(endpoint.endpoint.clone());
        if position > 0 {
            record.metrics().fallback(&endpoint.endpoint.name);
        }
        let decision = match &endpoint.endpoint.limit {
            Some(limit) => {
                let decision = ctx
                    .limiter
                    .check(&endpoint.endpoint.name, ctx.client_key, limit)
                    .await;
                if !decision.allowed {
                    record.metrics().rate_limited(&endpoint.endpoint.name);
                    let mut error = GatewayError::new(
                        ErrorKind::RateLimited,
                        429,
                        limits::exceeded_message(limit),
                    );
                    error.retry_after = Some(Duration::from_secs(decision.retry_after_secs()));
                    let mut response = failed(&error, ctx.family, record);
                    rate_limit_headers(&mut response, &decision);
                    return response;
                }
                Some(decision)
            }
            None => None,
        };
        if let Some(budget) = &endpoint.endpoint.token_limit {
            let name = &endpoint.endpoint.name;
            let budget_left = ctx.limiter.check_tokens(name, ctx.client_key, budget).await;
            if !budget_left.allowed {
                record.metrics().rate_limited(name);
                let mut error = GatewayError::new(
                    ErrorKind::RateLimited,
                    429,
                    limits::tokens_exceeded_message(budget),
                );
                error.retry_after = Some(Duration::from_secs(budget_left.retry_after_secs()));
                return with_limit_headers(failed(&error, ctx.family, record), decision);
            }
            record.charge_tokens_to(TokenCharge {
                limiter: ctx.limiter.clone(),
                endpoint: name.clone(),
                key: ctx.client_key.to_owned(),
                limit: budget.clone(),
            });
        }
        match call_with_retries(endpoint, this_request, &record, ctx).await {
            Ok(reply) => {
                if position > 0 {
                    tracing::info!(endpoint = %endpoint.endpoint.name, position, "served by a fallback destination");
                }
                record.upstream_done();
                record.status(200);
                let mut response = match reply {
                    InvokeReply::Json { body, usage } => {
                        record.usage(usage);
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body)
                    }
                    InvokeReply::Stream(chunks) => {
                        return with_limit_headers(event_stream(chunks, ctx, record), decision);
                    }
                };
                if let Some(decision) = decision {
                    rate_limit_headers(&mut response, &decision);
                }
                return response;
            }
            Err(error) => {
                log_failure(&error);
                let retryable = error.retryable() || error.kind == ErrorKind::Unavailable;
                failure = Some((error, decision));
                // Past the grace period every destination would answer the same 503; trying
                // them would only charge their rate limits.
                if !retryable || ctx.grace_end.is_over() {
                    break;
                }
            }
        }
    }
    match failure {
        Some((error, decision)) => with_limit_headers(failed(&error, ctx.family, record), decision),
        None => failed(
            &GatewayError::internal("no endpoint could take the request"),
            ctx.family,
            record,
        ),
    }
}

/// The error response, with the record told what happened.
pub fn failed(error: &GatewayError, family: ApiFamily, mut record: RequestRecord) -> HttpResponse {
    record.status(error.status);
    record.failed(error.kind.label());
    error_response(error, family)
}

fn with_limit_headers(mut response: HttpResponse, decision: Option<Decision>) -> HttpResponse {
    if let Some(decision) = decision {
        rate_limit_headers(&mut response, &decision);
    }
    response
}

/// Calls one endpoint, retrying retryable failures per its `retries:` policy (exponential
/// backoff with full jitter, an upstream `Retry-After` honoured), and keeping its circuit
/// breaker informed. An open circuit answers 503 at once without calling the provider; the end
/// of the shutdown grace period ends a backoff with a 503 too.
async fn call_with_retries(
    endpoint: &EndpointTarget,
    request: UnifiedRequest,
    record: &RequestRecord,
    ctx: &InvokeContext<'_>,
) -> Result<InvokeReply, GatewayError> {
    let breakers = ctx.breakers;
    let name = endpoint.endpoint.name.as_str();
    let provider = endpoint.endpoint.model.provider.as_str();
    let breaker = endpoint
        .endpoint
        .circuit_breaker
        .as_ref()
        .map(|policy| breakers.get(name, policy));
    let policy = endpoint.endpoint.retries;
    let attempts = policy.map_or(1, |p| p.attempts.max(1));
    let mut request = Some(request);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let final_attempt = attempt >= attempts;
        if let Some(breaker) = &breaker {
            let now = breakers.now_ms();
            if !breaker.allow(now) {
                let mut error = GatewayError::new(
                    ErrorKind::Unavailable,
                    503,
                    format!("The endpoint '{name}' is failing and temporarily unavailable (circuit open)."),
                );
                error.retry_after = Some(Duration::from_millis(breaker.retry_after_ms(now)));
                return Err(error);
            }
        }
        let Some(this_request) = (if final_attempt {
            request.take()
        } else {
            request.clone()
        }) else {
            return Err(GatewayError::internal("request lost between attempts"));
        };
        let error = match call_provider(endpoint, this_request, ctx).await {
            Ok(reply) => {
                if let Some(breaker) = &breaker {
                    breaker.record_success();
                }
                return Ok(reply);
            }
            Err(error) => error,
        };
        if error.origin() == Origin::Upstream {
            record
                .metrics()
                .upstream_error(name, provider, error.kind.label());
        }
        if let Some(breaker) = &breaker {
            if error.retryable() {
                breaker.record_failure(breakers.now_ms());
            } else if error.origin() == Origin::Upstream && error.status < 500 {
                // The provider answered (a 4xx about this request): it is up.
                breaker.record_success();
            } else {
                // Nothing learnt about the provider (client left, our own refusal): free the
                // half-open probe slot so the next request can probe.
                breaker.release_probe();
            }
        }
        let Some(policy) = policy.filter(|_| !final_attempt && error.retryable()) else {
            return Err(error);
        };
        let ceiling = policy
            .backoff_ms
            .saturating_mul(1u64 << (attempt - 1).min(20))
            .min(policy.max_backoff_ms);
        let jittered = rand::random_range(0..=ceiling);
        let wait = match error.retry_after {
            // The provider asked for more patience than we may spend: give up now.
            Some(after) if after.as_millis() as u64 > policy.max_backoff_ms => return Err(error),
            Some(after) => (after.as_millis() as u64).max(jittered),
            None => jittered,
        };
        record.metrics().retry(name);
        tracing::info!(
            endpoint = name,
            attempt,
            wait_ms = wait,
            kind = error.kind.label(),
            "retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            () = ctx.grace_end.reached() => return Err(shutting_down()),
        }
    }
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
    ctx: &InvokeContext<'_>,
) -> Result<InvokeReply, GatewayError> {
    // Held until the reply arrives: dropping it (the client left, or this future was dropped)
    // tells the provider to stop waiting on the upstream.
    let (_client_present, cancelled) = tokio::sync::oneshot::channel::<()>();
    let call = endpoint.provider.send(Invoke { request, cancelled });
    let gone = async {
        match &ctx.client {
            Some(client) => client.gone().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        reply = call => reply.map_err(|_| {
            GatewayError::new(
                ErrorKind::Unavailable,
                503,
                format!("The endpoint '{}' is being reconfigured; retry the request.", endpoint.endpoint.name),
            )
        })?,
        () = gone => {
            tracing::debug!(endpoint = %endpoint.endpoint.name, "client hung up before the reply");
            Err(GatewayError::new(ErrorKind::Internal, 499, "The client closed the request."))
        }
        () = ctx.grace_end.reached() => {
            // Dropping the call here tells the provider to stop waiting on the upstream.
            tracing::info!(endpoint = %endpoint.endpoint.name, "grace period over before the reply");
            Err(shutting_down())
        }
    }
}

/// What a request still waiting when the grace period ends is told about retrying.
const SHUTDOWN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a request still running at the end of the SIGTERM grace period gets, as a 503 or as a
/// stream's final event. Retryable: another instance (or this one, restarted) can serve it.
fn shutting_down() -> GatewayError {
    let mut error = GatewayError::new(
        ErrorKind::Unavailable,
        503,
        "The gateway is shutting down and could not finish this request in time; retry it.",
    );
    // Behind a load balancer the retry lands on another instance at once; a second is enough for
    // clients that wait for `Retry-After` before retrying a 503 (the OpenAI SDK does).
    error.retry_after = Some(SHUTDOWN_RETRY_AFTER);
    error
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
///
/// While the provider is silent, an SSE comment (`:`) goes out every `heartbeat`: clients ignore
/// it, proxies see a live connection, and above all it is the only way to learn that a client
/// has gone (a closed socket only fails on write), so the upstream request is dropped promptly
/// instead of at the next upstream byte. The record is finished when the stream ends or is
/// dropped.
///
/// A stream still open when the SIGTERM grace period ends gets a final error event (a 503 object)
/// and a properly ended body, rather than being cut by the server's forced stop.
pub fn event_stream(
    chunks: ChunkReceiver,
    ctx: &InvokeContext<'_>,
    record: RequestRecord,
) -> HttpResponse {
    /// An open stream; boxed, because the record is large and the state moves on every poll.
    struct Open {
        chunks: ChunkReceiver,
        record: RequestRecord,
        /// Fires `heartbeat` after the last write; re-armed lazily (see below).
        beat: Pin<Box<tokio::time::Sleep>>,
        last_write: Instant,
        /// Resolves at the end of the SIGTERM grace period; created once per stream.
        grace_end: Pin<Box<dyn std::future::Future<Output = ()>>>,
    }
    enum State {
        Open(Box<Open>),
        Done,
    }
    let (family, heartbeat) = (ctx.family, ctx.heartbeat);
    let open = Open {
        chunks,
        record,
        beat: Box::pin(tokio::time::sleep(heartbeat)),
        last_write: Instant::now(),
        grace_end: Box::pin(ctx.grace_end.reached()),
    };
    let body = futures_util::stream::unfold(State::Open(Box::new(open)), move |state| async move {
        let State::Open(mut open) = state else {
            return None;
        };
        let next = if heartbeat.is_zero() {
            tokio::select! {
                biased;
                next = open.chunks.recv() => next,
                () = open.grace_end.as_mut() => Some(Err(Box::new(shutting_down()))),
            }
        } else {
            // One timer per stream, not one per chunk: a chunk only notes the time, and the
            // timer, when it fires early, is pushed to `heartbeat` after the last write.
            loop {
                tokio::select! {
                    biased;
                    next = open.chunks.recv() => break next,
                    () = open.grace_end.as_mut() => break Some(Err(Box::new(shutting_down()))),
                    () = open.beat.as_mut() => {
                        let due = open.last_write + heartbeat;
                        let now = Instant::now();
                        if now < due {
                            open.beat.as_mut().reset(due.into());
                            continue;
                        }
                        open.last_write = now;
                        open.beat.as_mut().reset((now + heartbeat).into());
                        return Some((Ok(Bytes::from_static(b":\n\n")), State::Open(open)));
                    }
                }
            }
        };
        open.last_write = Instant::now();
        let record = &mut open.record;
        match next {
            Some(Ok(chunk)) => {
                record.chunk_sent();
                if let Some(usage) = chunk.usage {
                    record.usage(usage);
                }
                Some((
                    Ok::<_, actix_web::Error>(frame(&chunk.json)),
                    State::Open(open),
                ))
            }
            Some(Err(error)) => {
                log_failure(&error);
                let labels = record.labels();
                if error.origin() == Origin::Upstream {
                    record.metrics().upstream_error(
                        labels.endpoint,
                        labels.provider,
                        error.kind.label(),
                    );
                }
                record.failed(error.kind.label());
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
