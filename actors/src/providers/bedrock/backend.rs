//! The IO half of the Bedrock provider, run by the provider actor: it reads the clock, gets
//! credentials (the config's, the environment's, or a role's from STS, cached until shortly
//! before they expire), signs, sends, and makes one InvokeModel call per embeddings input.
//! Everything it decides with is in the pure modules beside it.

use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Mutex};

use crate::config::{BedrockConfig, Endpoint};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::Framing;
use crate::messages::InvokeReply;
use crate::provider::UpstreamSettings;
use crate::schema::UnifiedRequest;
use crate::upstream::{self, UpstreamRequest, UpstreamResponse};

use super::credentials::{self, AwsEnvironment, Temporary};
use super::sigv4::Credentials;
use super::{Auth, BedrockWire, Plan};

/// Bedrock's SigV4 signing name (the service of `bedrock-runtime`).
const SIGNING_SERVICE: &str = "bedrock";

/// One endpoint's Bedrock provider on one worker.
#[derive(Clone)]
pub struct BedrockBackend {
    client: awc::Client,
    wire: Rc<BedrockWire>,
    settings: UpstreamSettings,
    /// The assumed role's credentials. The lock is held across the STS call, so requests that
    /// arrive while it runs wait for that one call instead of each making their own.
    role: Rc<Mutex<Option<Temporary>>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn total_timeout() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamTimeout,
        504,
        "The provider did not answer within the total timeout.",
    )
}

impl BedrockBackend {
    /// Reads the process environment once (region, credentials, endpoint overrides), as boto3
    /// does when it creates a client.
    pub fn new(
        endpoint: &Endpoint,
        config: &BedrockConfig,
        client: awc::Client,
        settings: UpstreamSettings,
    ) -> Self {
        let wire = BedrockWire::new(
            config,
            endpoint.model.name.clone(),
            endpoint.model.provider,
            &AwsEnvironment::from_process(),
        );
        Self {
            client,
            wire: Rc::new(wire),
            settings,
            role: Rc::new(Mutex::new(None)),
        }
    }

    /// Every credential this endpoint may send (the assumed role's too), to scrub from errors.
    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self.wire.secrets().into_iter().map(str::to_owned).collect();
        if let Ok(role) = self.role.try_lock() {
            if let Some(temporary) = role.as_ref() {
                secrets.push(temporary.credentials.secret_access_key.clone());
                secrets.extend(temporary.credentials.session_token.clone());
            }
        }
        secrets
    }

    pub async fn invoke(self, request: UnifiedRequest) -> Result<InvokeReply, GatewayError> {
        let result = self.run(request).await;
        result.map_err(|error| {
            let secrets = self.secrets();
            error.redact(&secrets.iter().map(String::as_str).collect::<Vec<_>>())
        })
    }

    async fn run(&self, request: UnifiedRequest) -> Result<InvokeReply, GatewayError> {
        let deadline = Instant::now() + self.settings.total_timeout;
        // Translation errors (501, 422, the region's 400) happen before anything is sent.
        let plan = self.wire.plan(&request)?;
        drop(request);
        let credentials = self.credentials(deadline).await?;
        let credentials = credentials.as_ref();
        match plan {
            Plan::Chat {
                call,
                stream: false,
            } => {
                let body = self.exchange(call, credentials, deadline).await?;
                let (body, usage) = self.wire.chat_response(body, unix_now() as i64)?;
                Ok(InvokeReply::Json { body, usage })
            }
            Plan::Chat { call, stream: true } => {
                let response = self.send(call, credentials, deadline).await?;
                let response = upstream::check_stream_status(
                    response,
                    &self.settings,
                    deadline,
                    Framing::AwsEventStream,
                )
                .await?;
                let (sender, receiver) = mpsc::channel(self.settings.stream_buffer);
                let mut translator = self.wire.stream_translator();
                let secrets = self.secrets();
                actix_rt::spawn(upstream::pump_events(
                    response,
                    self.settings.clone(),
                    deadline,
                    sender,
                    Framing::AwsEventStream,
                    // An event stream has no end marker: the translator marks its last event
                    // (`metadata`) `Final`, and a body that ends before it was cut.
                    true,
                    move |event| {
                        translator.event(event, unix_now() as i64).map_err(|error| {
                            error.redact(&secrets.iter().map(String::as_str).collect::<Vec<_>>())
                        })
                    },
                ));
                Ok(InvokeReply::Stream(receiver))
            }
            Plan::Completions { call, family } => {
                let body = self.exchange(call, credentials, deadline).await?;
                let (body, usage) =
                    self.wire
                        .completions_response(family, body, unix_now() as i64)?;
                Ok(InvokeReply::Json { body, usage })
            }
            Plan::Embeddings { calls } => {
                let mut bodies = Vec::with_capacity(calls.len());
                for call in calls {
                    bodies.push(self.exchange(call, credentials, deadline).await?);
                }
                let (body, usage) = self.wire.embeddings_response(bodies)?;
                Ok(InvokeReply::Json { body, usage })
            }
        }
    }

    /// The credentials to sign with; `None` for bearer-token auth.
    async fn credentials(&self, deadline: Instant) -> Result<Option<Credentials>, GatewayError> {
        match self.wire.auth() {
            Auth::Bearer(_) => Ok(None),
            Auth::Static(credentials) => Ok(Some(credentials.clone())),
            Auth::Environment(credentials) => credentials
                .clone()
                .map(Some)
                .ok_or_else(credentials::no_credentials),
            Auth::AssumeRole {
                role_arn,
                session_seconds,
                base,
            } => {
                let base = base.as_ref().ok_or_else(credentials::no_credentials)?;
                let mut role = self.role.lock().await;
                if let Some(temporary) = role.as_ref().filter(|t| t.fresh_at(unix_now())) {
                    return Ok(Some(temporary.credentials.clone()));
                }
                let temporary = self
                    .assume_role(role_arn, *session_seconds, base, deadline)
                    .await?;
                let credentials = temporary.credentials.clone();
                *role = Some(temporary);
                Ok(Some(credentials))
            }
        }
    }

    async fn assume_role(
        &self,
        role_arn: &str,
        session_seconds: u64,
        base: &Credentials,
        deadline: Instant,
    ) -> Result<Temporary, GatewayError> {
        let (url, region) = credentials::sts_target(self.wire.sts_endpoint(), self.wire.region());
        let request = credentials::assume_role_request(
            &url,
            &region,
            role_arn,
            session_seconds,
            base,
            unix_now(),
        )?;
        tracing::debug!(role_arn, "assuming the Bedrock role through STS");
        let mut response = self.post(request, deadline).await?;
        let status = response.status().as_u16();
        let body = upstream::read_body(&mut response, &self.settings, deadline).await?;
        credentials::parse_assume_role(status, &body, role_arn)
    }

    async fn post(
        &self,
        request: UpstreamRequest,
        deadline: Instant,
    ) -> Result<UpstreamResponse, GatewayError> {
        match tokio::time::timeout_at(deadline.into(), upstream::send(&self.client, request)).await
        {
            Ok(response) => response,
            Err(_) => Err(total_timeout()),
        }
    }

    /// Signs `call` at the current time (unless it carries a bearer token) and sends it.
    async fn send(
        &self,
        mut call: UpstreamRequest,
        credentials: Option<&Credentials>,
        deadline: Instant,
    ) -> Result<UpstreamResponse, GatewayError> {
        if let Some(credentials) = credentials {
            let region = self.wire.region().unwrap_or_default();
            credentials::sign_request(&mut call, credentials, region, SIGNING_SERVICE, unix_now())?;
        }
        self.post(call, deadline).await
    }

    /// One non-streamed call: its JSON answer, or MLflow's error for its status.
    async fn exchange(
        &self,
        call: UpstreamRequest,
        credentials: Option<&Credentials>,
        deadline: Instant,
    ) -> Result<serde_json::Value, GatewayError> {
        let response = self.send(call, credentials, deadline).await?;
        upstream::read_json(response, &self.settings, deadline).await
    }
}
