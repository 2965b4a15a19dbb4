//! The ProviderSupervisor actor: one per (endpoint, worker), started through actix's `Supervisor`.
//!
//! It owns what must live on the worker thread (the provider's pooled HTTP client, which is
//! `!Send`) and turns each [`Invoke`] into a reply. The work itself runs in a spawned future, not
//! in the actor's context, so a reload that drops the actor never cuts off a request or stream
//! that is already running.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use actix::prelude::*;

use crate::config::{Endpoint, EndpointType, ProviderConfig};
use crate::error::GatewayError;
use crate::messages::{Invoke, InvokeReply};
use crate::providers::bedrock::BedrockBackend;
use crate::providers::mock::MockBackend;
use crate::providers::Wire;
use crate::schema::UnifiedRequest;
use crate::upstream;

/// Limits and timeouts for talking to providers; from the server settings.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// TCP + TLS connect.
    pub connect_timeout: Duration,
    /// From sending the request to the response head.
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of a streamed body.
    pub idle_timeout: Duration,
    /// Whole exchange, body included (MLflow's `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`).
    pub total_timeout: Duration,
    /// Largest non-streamed upstream body we read.
    pub max_response_bytes: usize,
    /// Chunks buffered between a provider stream and the client; bounds memory per stream and
    /// gives backpressure.
    pub stream_buffer: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(300),
            max_response_bytes: 64 * 1024 * 1024,
            stream_buffer: 64,
        }
    }
}

/// The provider-specific half of the actor.
enum Backend {
    Mock(MockBackend),
    Http(HttpBackend),
    /// Amazon Bedrock: SigV4 needs the clock and may need an STS call first, and embeddings
    /// make one call per input, so it runs its own exchange (`providers::bedrock::backend`).
    Bedrock(BedrockBackend),
    /// Configured and validated, but this build has no translation for it yet: 501.
    Unavailable,
}

pub struct ProviderSupervisor {
    endpoint: Arc<Endpoint>,
    upstream: UpstreamSettings,
    backend: Backend,
}

impl ProviderSupervisor {
    /// Starts the actor on the current worker's arbiter, restarted by actix if it ever stops.
    pub fn start_supervised(endpoint: Arc<Endpoint>, upstream: UpstreamSettings) -> Addr<Self> {
        Supervisor::start(move |_| {
            let backend = build_backend(&endpoint, &upstream);
            Self {
                endpoint,
                upstream,
                backend,
            }
        })
    }
}

fn build_backend(endpoint: &Endpoint, upstream: &UpstreamSettings) -> Backend {
    match &endpoint.model.config {
        ProviderConfig::Mock(config) => Backend::Mock(MockBackend::new(
            endpoint,
            config.clone(),
            upstream.stream_buffer,
        )),
        ProviderConfig::Bedrock(config) => Backend::Bedrock(BedrockBackend::new(
            endpoint,
            config,
            upstream::build_client(upstream),
            upstream.clone(),
        )),
        _ => match Wire::for_endpoint(endpoint) {
            Some(wire) => Backend::Http(HttpBackend {
                client: upstream::build_client(upstream),
                wire: Rc::new(wire),
                settings: upstream.clone(),
            }),
            None => Backend::Unavailable,
        },
    }
}

impl Actor for ProviderSupervisor {
    type Context = Context<Self>;
}

impl Supervised for ProviderSupervisor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(endpoint = %self.endpoint.name, "provider actor restarting");
        self.backend = build_backend(&self.endpoint, &self.upstream);
    }
}

impl Handler<Invoke> for ProviderSupervisor {
    type Result = ResponseFuture<Result<InvokeReply, GatewayError>>;

    fn handle(&mut self, msg: Invoke, _: &mut Self::Context) -> Self::Result {
        match &self.backend {
            Backend::Mock(mock) => Box::pin(until_cancelled(
                mock.clone().invoke(msg.request),
                msg.cancelled,
            )),
            Backend::Http(http) => {
                let http = http.clone();
                Box::pin(async move {
                    let wire = http.wire.clone();
                    until_cancelled(http.invoke(msg.request), msg.cancelled)
                        .await
                        .map_err(|error| error.redact(&wire.secrets()))
                })
            }
            // Redacts its own errors (its credentials can come from STS at run time).
            Backend::Bedrock(bedrock) => Box::pin(until_cancelled(
                bedrock.clone().invoke(msg.request),
                msg.cancelled,
            )),
            Backend::Unavailable => {
                let provider = self.endpoint.model.provider;
                let route: EndpointType = msg.request.endpoint_type();
                let error = GatewayError::new(
                    crate::error::ErrorKind::NotImplemented,
                    501,
                    format!(
                        "The {} route for provider '{}' is not available in this Switchyard build yet.",
                        route.route_word(),
                        provider.as_str()
                    ),
                );
                Box::pin(async move { Err(error) })
            }
        }
    }
}

/// Runs `work` unless the client goes away first: the handler holds the other end of `cancelled`
/// while it waits for the reply, so a client that disconnects before the first byte drops it,
/// and the upstream request (and its connection) is dropped with it.
async fn until_cancelled(
    work: impl Future<Output = Result<InvokeReply, GatewayError>>,
    cancelled: oneshot::Receiver<()>,
) -> Result<InvokeReply, GatewayError> {
    tokio::select! {
        reply = work => reply,
        _ = cancelled => {
            tracing::debug!("request cancelled: client went away before the reply");
            Err(GatewayError::new(crate::error::ErrorKind::Internal, 499, "The client closed the request."))
        }
    }
}

/// An HTTP provider: the pooled client, the translation and the timeouts.
#[derive(Clone)]
struct HttpBackend {
    client: awc::Client,
    wire: Rc<Wire>,
    settings: UpstreamSettings,
}

impl HttpBackend {
    async fn invoke(self, request: UnifiedRequest) -> Result<InvokeReply, GatewayError> {
        let deadline = Instant::now() + self.settings.total_timeout;
        let kind = request.endpoint_type();
        let stream = request.is_stream();
        // Translation errors (501, provider parameter rules) happen before anything is sent.
        let upstream_request = self.wire.request(&request)?;
        drop(request);
        let response = match tokio::time::timeout_at(
            deadline.into(),
            upstream::send(&self.client, upstream_request),
        )
        .await
        {
            Ok(response) => response?,
            Err(_) => return Err(total_timeout()),
        };
        if !stream {
            let body = upstream::read_json_bytes(response, &self.settings, deadline)
                .await
                .map_err(|error| self.wire.upstream_error(kind, error))?;
            let (body, usage) = self.wire.response_from_text(kind, &body)?;
            return Ok(InvokeReply::Json { body, usage });
        }
        let mut translator = self.wire.stream_translator(kind);
        let response =
            upstream::check_stream_status(response, &self.settings, deadline, translator.framing())
                .await?;
        let (sender, receiver) = mpsc::channel(self.settings.stream_buffer);
        let wire = self.wire.clone();
        actix_rt::spawn(upstream::pump_events(
            response,
            self.settings.clone(),
            deadline,
            sender,
            translator.framing(),
            translator.requires_end_marker(),
            move |event| {
                translator
                    .event(event)
                    .map_err(|error| error.redact(&wire.secrets()))
            },
        ));
        Ok(InvokeReply::Stream(receiver))
    }
}

fn total_timeout() -> GatewayError {
    GatewayError::new(
        crate::error::ErrorKind::UpstreamTimeout,
        504,
        "The provider did not answer within the total timeout.",
    )
}
