//! Amazon Bedrock (`bedrock` / `amazon-bedrock`): chat through the Converse and ConverseStream
//! APIs, completions and embeddings through InvokeModel, authenticated with a bearer token (a
//! Bedrock API key) or SigV4 (static keys, the environment's credentials, or a role assumed
//! through STS).
//!
//! Layout:
//! - this file: [`BedrockWire`], the pure plan of the HTTP calls a unified request needs (URL,
//!   body, headers but the signature), with MLflow's 501s, 422s and region rules;
//! - `converse`: chat bodies, responses and stream events; `invoke`: the InvokeModel model
//!   families;
//! - `sigv4`, `eventstream`: the AWS signature and the binary stream framing, pure;
//! - `credentials`: where SigV4 credentials come from, and STS AssumeRole (pure halves);
//! - `backend`: the only IO: credentials, the clock, sending, one call per embeddings input.

mod backend;
mod converse;
pub mod credentials;
pub mod eventstream;
mod invoke;
pub mod sigv4;

#[cfg(test)]
mod tests;

pub use backend::BedrockBackend;

use bytes::Bytes;
use serde::Serialize;

use crate::config::{AwsConfig, BedrockConfig, EndpointType, Provider, Secret};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::UnifiedRequest;
use crate::upstream::UpstreamRequest;

use crate::providers::wire_json::{request_body, response_body};
use credentials::AwsEnvironment;
use invoke::Family;
use sigv4::Credentials;

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `aws_bearer_token`: a Bedrock API key, sent as `Authorization: Bearer`. (A `Secret`, so
    /// `Debug` never prints it; [`Credentials`] hide theirs too.)
    Bearer(Secret),
    /// SigV4 with `aws_access_key_id` / `aws_secret_access_key` (/ `aws_session_token`).
    Static(Credentials),
    /// SigV4 with the default credential chain; only its environment variables are read
    /// (`None` when they are not set).
    Environment(Option<Credentials>),
    /// SigV4 with temporary credentials from STS AssumeRole, itself signed with the
    /// environment's credentials.
    AssumeRole {
        role_arn: String,
        session_seconds: u64,
        base: Option<Credentials>,
    },
}

/// The calls a unified request needs: everything but the SigV4 headers, which need the clock.
#[derive(Debug)]
pub enum Plan {
    /// Converse (or ConverseStream when `stream`).
    Chat { call: UpstreamRequest, stream: bool },
    /// InvokeModel with the body of a model family.
    Completions {
        call: UpstreamRequest,
        family: Family,
    },
    /// InvokeModel once per input text, in order (as MLflow does).
    Embeddings { calls: Vec<UpstreamRequest> },
}

/// One endpoint's Bedrock translation.
#[derive(Debug, Clone)]
pub struct BedrockWire {
    model: String,
    provider: Provider,
    auth: Auth,
    /// `aws_region`; for SigV4 modes also `AWS_REGION` / `AWS_DEFAULT_REGION` (boto3 reads the
    /// environment; MLflow's bearer path does not).
    region: Option<String>,
    /// `aws_endpoint_url`; for SigV4 modes also boto3's `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` /
    /// `AWS_ENDPOINT_URL`.
    endpoint_url: Option<String>,
    /// Where STS AssumeRole goes: `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL`, else AWS's.
    sts_endpoint: Option<String>,
}

impl BedrockWire {
    pub fn new(
        config: &BedrockConfig,
        model: Option<String>,
        provider: Provider,
        env: &AwsEnvironment,
    ) -> Self {
        let config_region = config.aws_config.region().map(str::to_owned);
        let (auth, region, endpoint_url) = match &config.aws_config {
            AwsConfig::BearerToken { bearer_token, .. } => (
                Auth::Bearer(bearer_token.clone()),
                config_region,
                config.endpoint_url.clone(),
            ),
            other => {
                let auth = match other {
                    AwsConfig::StaticKeys {
                        access_key_id,
                        secret_access_key,
                        session_token,
                        ..
                    } => Auth::Static(Credentials {
                        access_key_id: access_key_id.clone(),
                        secret_access_key: secret_access_key.expose().to_owned(),
                        session_token: session_token.as_ref().map(|t| t.expose().to_owned()),
                    }),
                    AwsConfig::AssumeRole {
                        role_arn,
                        session_length_seconds,
                        ..
                    } => Auth::AssumeRole {
                        role_arn: role_arn.clone(),
                        session_seconds: *session_length_seconds,
                        base: env.credentials.clone(),
                    },
                    _ => Auth::Environment(env.credentials.clone()),
                };
                (
                    auth,
                    config_region.or_else(|| env.region.clone()),
                    config
                        .endpoint_url
                        .clone()
                        .or_else(|| env.bedrock_endpoint.clone()),
                )
            }
        };
        Self {
            model: model.unwrap_or_default(),
            provider,
            auth,
            region,
            endpoint_url,
            sts_endpoint: env.sts_endpoint.clone(),
        }
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    pub fn sts_endpoint(&self) -> Option<&str> {
        self.sts_endpoint.as_deref()
    }

    /// The configured credentials, so errors can be scrubbed of them.
    pub fn secrets(&self) -> Vec<&str> {
        fn creds(c: &Credentials) -> Vec<&str> {
            let mut out = vec![c.secret_access_key.as_str()];
            out.extend(c.session_token.as_deref());
            out
        }
        match &self.auth {
            Auth::Bearer(token) => vec![token.expose()],
            Auth::Static(c) => creds(c),
            Auth::Environment(c) | Auth::AssumeRole { base: c, .. } => {
                c.as_ref().map(creds).unwrap_or_default()
            }
        }
    }

    fn display(&self) -> &'static str {
        self.provider.display_name()
    }

    /// The calls for `request`, or MLflow's error for it, decided before anything is sent.
    pub fn plan(&self, request: &UnifiedRequest) -> Result<Plan, GatewayError> {
        let bearer = matches!(self.auth, Auth::Bearer(_));
        match request {
            UnifiedRequest::Chat(chat) => {
                let stream = request.is_stream();
                if stream && bearer {
                    return Err(GatewayError::new(
                        ErrorKind::NotImplemented,
                        501,
                        "Streaming is not yet supported for Bedrock API key (bearer token) auth. Use a non-streaming chat request instead.",
                    ));
                }
                let body = converse::request_body(chat)?;
                let action = if stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                let call = self.call(action, &body)?;
                Ok(Plan::Chat { call, stream })
            }
            UnifiedRequest::Completions(completions) => {
                if request.is_stream() {
                    return Err(GatewayError::streaming_not_supported(
                        EndpointType::Completions.route_word(),
                        self.display(),
                    ));
                }
                let family = invoke::family(&self.model)?;
                let body = invoke::completions_body(family, completions)?;
                let call = self.call("invoke", &body)?;
                Ok(Plan::Completions { call, family })
            }
            UnifiedRequest::Embeddings(embeddings) => {
                if bearer {
                    return Err(GatewayError::new(
                        ErrorKind::NotImplemented,
                        501,
                        "Embeddings are not supported for Bedrock API key (bearer token) auth. Use access_keys or default_chain auth mode for embeddings.",
                    ));
                }
                let calls = invoke::embeddings_bodies(embeddings)
                    .iter()
                    .map(|body| self.call("invoke", body))
                    .collect::<Result<_, _>>()?;
                Ok(Plan::Embeddings { calls })
            }
        }
    }

    /// `POST {base}/model/{modelId}/{action}` with a JSON body.
    fn call(&self, action: &str, body: &impl Serialize) -> Result<UpstreamRequest, GatewayError> {
        let bearer = match &self.auth {
            Auth::Bearer(token) => Some(token.expose()),
            _ => None,
        };
        let region = match (self.region.as_deref(), bearer) {
            (Some(region), _) => region,
            (None, Some(_)) => {
                return Err(GatewayError::new(
                    ErrorKind::InvalidParameter,
                    400,
                    "aws_region_name is required for Bedrock API key authentication. The API key can only be used in the AWS Region it was generated in.",
                ))
            }
            // boto3 cannot build a client without a region (MLflow: a plain 500).
            (None, None) => {
                return Err(GatewayError::internal(
                    "No AWS region for Amazon Bedrock: set aws_config.aws_region, or AWS_REGION / AWS_DEFAULT_REGION.",
                ))
            }
        };
        let base = self
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        // boto3 (SigV4) percent-encodes the model id in the path (`:` as %3A) and signs it
        // encoded once more; MLflow's bearer path sends the id with `:` as is. `/` (in
        // inference-profile ARNs) is encoded in both, or the path would change.
        let model = match bearer {
            Some(_) => sigv4::uri_encode(&self.model, false).replace("%3A", ":"),
            None => sigv4::uri_encode(&self.model, false),
        };
        let url = super::openai::join_url(&base, &format!("model/{model}/{action}"));
        let mut headers = Vec::new();
        if action == "invoke" {
            // InvokeModel's `accept` parameter, which boto3 sends as this header.
            headers.push(("accept", "application/json".to_owned()));
        }
        if let Some(token) = bearer {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let body = request_body(body)?;
        Ok(UpstreamRequest { url, headers, body })
    }

    pub fn chat_response(
        &self,
        body: serde_json::Value,
        now: i64,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let response = converse::response(body, &self.model, self.provider.as_str(), now)?;
        let usage = Usage::new(
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
        );
        Ok((response_body(&response)?, usage))
    }

    pub fn completions_response(
        &self,
        family: Family,
        body: serde_json::Value,
        now: i64,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let response = invoke::completions_response(family, body, &self.model, now)?;
        Ok((response_body(&response)?, Usage::default()))
    }

    pub fn embeddings_response(
        &self,
        bodies: Vec<serde_json::Value>,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let response = invoke::embeddings_response(bodies, &self.model)?;
        let usage = Usage::new(response.usage.prompt_tokens, None);
        Ok((response_body(&response)?, usage))
    }

    pub fn stream_translator(&self) -> converse::StreamTranslator {
        converse::StreamTranslator::new(self.model.clone(), self.provider.as_str())
    }
}
