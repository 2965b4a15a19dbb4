//! Per-request observability: the request id (taken from `X-Request-Id` when a proxy sent a sane
//! one, generated otherwise, echoed in the response), the tracing span every log line of the
//! request sits in, and the [`RequestRecord`] that turns a finished request into metrics and one
//! access-log line. A record finishes when it is dropped, so a stream is accounted for when it
//! ends, whether it completed, failed or the client left.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use switchyard_actors::config::{Endpoint, TokenLimit};
use switchyard_actors::limits::RateLimiter;
use switchyard_actors::messages::Usage;
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use crate::metrics::{Metrics, RequestLabels};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, stored in its extensions by [`request_id`].
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts an incoming id only if it is short and plain, so a client cannot inject log noise.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn generate() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Middleware: assigns the request id and echoes it on the response.
pub async fn request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(generate);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.call(request).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// The span of one request for tracing-actix-web: method and request id;
/// deliberately no client address, headers or query (they can carry credentials).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        // No route pattern here: resolving it walks the whole route map again, on every request.
        tracing::info_span!("request", request_id = %id, method = %request.method())
    }

    fn on_request_end<B: MessageBody>(_span: Span, _outcome: &Result<ServiceResponse<B>, Error>) {
        // The access line is written by `RequestRecord` when the response body has ended.
    }
}

/// What one invocation did, recorded once when it is dropped.
pub struct RequestRecord {
    metrics: Arc<Metrics>,
    started: Instant,
    request_id: String,
    path: String,
    endpoint: Option<Arc<Endpoint>>,
    /// The requested name, when it is configured (an unknown name is never a label).
    target: String,
    status: u16,
    upstream_secs: Option<f64>,
    first_chunk_secs: Option<f64>,
    usage: Usage,
    streamed: bool,
    error_kind: Option<&'static str>,
    /// Where to charge the tokens this request used, when its endpoint has a token budget.
    token_charge: Option<TokenCharge>,
}

/// A token budget to charge when the request is finished (for a stream: when it ends).
pub struct TokenCharge {
    pub limiter: Arc<RateLimiter>,
    pub endpoint: String,
    pub key: String,
    pub limit: TokenLimit,
}

impl RequestRecord {
    pub fn start(metrics: Arc<Metrics>, request_id: String, path: &str) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            started: Instant::now(),
            request_id,
            path: path.to_owned(),
            endpoint: None,
            target: String::new(),
            status: 0,
            upstream_secs: None,
            first_chunk_secs: None,
            usage: Usage::default(),
            streamed: false,
            error_kind: None,
            token_charge: None,
        }
    }

    /// The configured endpoint or route name the request resolved to.
    pub fn target(&mut self, name: &str) {
        self.target = name.to_owned();
    }

    /// The endpoint that actually served (a route's chosen destination).
    pub fn served_by(&mut self, endpoint: Arc<Endpoint>) {
        self.endpoint = Some(endpoint);
    }

    pub fn status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn upstream_done(&mut self) {
        self.upstream_secs = Some(self.started.elapsed().as_secs_f64());
    }

    pub fn usage(&mut self, usage: Usage) {
        self.usage.merge(usage);
    }

    /// Charge this request's tokens to a budget when it finishes.
    pub fn charge_tokens_to(&mut self, charge: TokenCharge) {
        self.token_charge = Some(charge);
    }

    pub fn failed(&mut self, kind: &'static str) {
        self.error_kind = Some(kind);
    }

    /// A streamed chunk went out; the first one sets the time to first token.
    pub fn chunk_sent(&mut self) {
        self.streamed = true;
        if self.first_chunk_secs.is_none() {
            self.first_chunk_secs = Some(self.started.elapsed().as_secs_f64());
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn labels(&self) -> RequestLabels<'_> {
        match &self.endpoint {
            Some(endpoint) => RequestLabels {
                endpoint: &endpoint.name,
                route_type: endpoint.endpoint_type.as_str(),
                provider: endpoint.model.provider.as_str(),
            },
            None => RequestLabels {
                endpoint: &self.target,
                ..RequestLabels::default()
            },
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let used = self.usage.input_tokens.unwrap_or(0) + self.usage.output_tokens.unwrap_or(0);
        if let (Some(charge), true) = (self.token_charge.take(), used > 0) {
            // The record ends inside the response body; charging may need Redis, so it runs as a
            // task of its own (there is always a runtime on a worker; if not, nothing to charge to).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    charge
                        .limiter
                        .charge_tokens(&charge.endpoint, &charge.key, &charge.limit, used)
                        .await;
                });
            }
        }
        let total = self.started.elapsed().as_secs_f64();
        let metrics = self.metrics.clone();
        metrics.in_flight.dec();
        let labels = self.labels();
        metrics.request(labels, self.status, total);
        if let Some(upstream) = self.upstream_secs {
            metrics.upstream(labels, upstream);
            if !self.streamed {
                metrics.overhead(labels, total - upstream);
            }
        }
        if let Some(first) = self.first_chunk_secs {
            metrics.first_token(labels, first);
        }
        metrics.tokens(labels, self.usage.input_tokens, self.usage.output_tokens);
        tracing::info!(
            target: "switchyard::access",
            request_id = %self.request_id,
            path = %self.path,
            endpoint = labels.endpoint,
            provider = labels.provider,
            status = self.status,
            duration_ms = (total * 1000.0).round() as u64,
            upstream_ms = self.upstream_secs.map(|s| (s * 1000.0).round() as u64),
            input_tokens = self.usage.input_tokens,
            output_tokens = self.usage.output_tokens,
            stream = self.streamed,
            error = self.error_kind,
            "request"
        );
    }
}
