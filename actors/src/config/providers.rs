//! Provider names and the typed, defaulted per-provider `model.config` blocks, with MLflow 3.17.2's
//! fields and defaults.
//!
//! Parsing a raw YAML block into these types lives in `config::blocks`; this file only holds the
//! types, their defaults and the name matching, so the rest of the runtime can depend on them
//! without pulling in the loader.

use serde_json::{Map, Value};

use super::model::Secret;

/// Every provider value MLflow 3.17.2 knows, plus our own `mock`.
///
/// Aliases stay distinct variants (`Bedrock` / `AmazonBedrock`, `Databricks` /
/// `DatabricksModelServing`, `OpenAi` / `Azure`) because the list/get API reports the value that
/// was written in the file, canonicalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Cohere,
    Ai21Labs,
    MlflowModelServing,
    MosaicMl,
    HuggingFaceTgi,
    Palm,
    Gemini,
    Bedrock,
    AmazonBedrock,
    DatabricksModelServing,
    Databricks,
    Mistral,
    TogetherAi,
    Litellm,
    Azure,
    Groq,
    DeepSeek,
    Xai,
    OpenRouter,
    Ollama,
    VertexAi,
    Portkey,
    SapAiCore,
    TypeSafe,
    /// Switchyard's built-in deterministic provider for demos and tests; no upstream at all.
    Mock,
}

impl Provider {
    /// Every provider, in MLflow's enum order, then `Mock`.
    pub const ALL: [Provider; 27] = [
        Self::OpenAi,
        Self::Anthropic,
        Self::Cohere,
        Self::Ai21Labs,
        Self::MlflowModelServing,
        Self::MosaicMl,
        Self::HuggingFaceTgi,
        Self::Palm,
        Self::Gemini,
        Self::Bedrock,
        Self::AmazonBedrock,
        Self::DatabricksModelServing,
        Self::Databricks,
        Self::Mistral,
        Self::TogetherAi,
        Self::Litellm,
        Self::Azure,
        Self::Groq,
        Self::DeepSeek,
        Self::Xai,
        Self::OpenRouter,
        Self::Ollama,
        Self::VertexAi,
        Self::Portkey,
        Self::SapAiCore,
        Self::TypeSafe,
        Self::Mock,
    ];

    /// The canonical value, as written in YAML and reported by the list/get API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Cohere => "cohere",
            Self::Ai21Labs => "ai21labs",
            Self::MlflowModelServing => "mlflow-model-serving",
            Self::MosaicMl => "mosaicml",
            Self::HuggingFaceTgi => "huggingface-text-generation-inference",
            Self::Palm => "palm",
            Self::Gemini => "gemini",
            Self::Bedrock => "bedrock",
            Self::AmazonBedrock => "amazon-bedrock",
            Self::DatabricksModelServing => "databricks-model-serving",
            Self::Databricks => "databricks",
            Self::Mistral => "mistral",
            Self::TogetherAi => "togetherai",
            Self::Litellm => "litellm",
            Self::Azure => "azure",
            Self::Groq => "groq",
            Self::DeepSeek => "deepseek",
            Self::Xai => "xai",
            Self::OpenRouter => "openrouter",
            Self::Ollama => "ollama",
            Self::VertexAi => "vertex_ai",
            Self::Portkey => "portkey",
            Self::SapAiCore => "sap-ai-core",
            Self::TypeSafe => "typesafe",
            Self::Mock => "mock",
        }
    }

    /// MLflow's provider-class `DISPLAY_NAME`, used in "not implemented for X models" errors.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::OpenAi | Self::Azure => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Cohere => "Cohere",
            Self::Ai21Labs => "AI21Labs",
            Self::MlflowModelServing => "MLflow Model Serving",
            Self::MosaicMl => "MosaicML",
            Self::HuggingFaceTgi => "Hugging Face Text Generation Inference",
            Self::Palm => "PaLM",
            Self::Gemini => "Gemini",
            Self::Bedrock | Self::AmazonBedrock => "Amazon Bedrock",
            Self::DatabricksModelServing | Self::Databricks => "Databricks",
            Self::Mistral => "Mistral",
            Self::TogetherAi => "TogetherAI",
            Self::Litellm => "LiteLLM",
            Self::Groq => "Groq",
            Self::DeepSeek => "DeepSeek",
            Self::Xai => "xAI",
            Self::OpenRouter => "OpenRouter",
            Self::Ollama => "Ollama",
            Self::VertexAi => "Vertex AI",
            Self::Portkey => "Portkey",
            Self::SapAiCore => "SAP AI Core",
            Self::TypeSafe => "TypeSafe",
            Self::Mock => "Mock",
        }
    }

    /// The Python enum repr MLflow puts in error texts: `Provider.OPENAI`, `Provider.AMAZON_BEDROCK`.
    pub fn enum_repr(self) -> String {
        format!(
            "Provider.{}",
            self.as_str().replace('-', "_").to_uppercase()
        )
    }

    /// Matches a `model.provider` value as MLflow does: case-insensitive, with `-` and `_`
    /// interchangeable (`OpenAI`, `amazon_bedrock`, `HUGGINGFACE-TEXT-GENERATION-INFERENCE`).
    pub fn parse(value: &str) -> Option<Provider> {
        let wanted = normalise_name(value);
        Self::ALL
            .into_iter()
            .find(|p| normalise_name(p.as_str()) == wanted)
    }

    /// Whether a `model.config` block must be present. MLflow requires one for every built-in
    /// provider, even those whose block has no required field; our mock works without one.
    pub fn config_required(self) -> bool {
        !matches!(self, Self::Mock)
    }

    /// The name used by `MLFLOW_GATEWAY_ALLOWED_PROVIDERS`, where aliases fold onto one entry.
    pub fn policy_name(self) -> Provider {
        match self {
            Self::AmazonBedrock => Self::Bedrock,
            Self::DatabricksModelServing => Self::Databricks,
            other => other,
        }
    }
}

fn normalise_name(value: &str) -> String {
    value.replace('-', "_").to_uppercase()
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated `model.config` block, one variant per config shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderConfig {
    /// `openai` and `azure`.
    OpenAi(OpenAiConfig),
    Anthropic(AnthropicConfig),
    Cohere(CohereConfig),
    Gemini(GeminiConfig),
    Palm(PalmConfig),
    Ai21Labs(Ai21LabsConfig),
    MosaicMl(MosaicMlConfig),
    Mistral(MistralConfig),
    TogetherAi(TogetherAiConfig),
    HuggingFaceTgi(HuggingFaceTgiConfig),
    MlflowModelServing(MlflowModelServingConfig),
    /// `bedrock` and `amazon-bedrock`.
    Bedrock(BedrockConfig),
    /// `groq`, `deepseek`, `xai`, `openrouter`, `ollama`.
    OpenAiCompatible(OpenAiCompatibleConfig),
    Portkey(PortkeyConfig),
    /// `databricks` and `databricks-model-serving`.
    Databricks(DatabricksConfig),
    VertexAi(VertexAiConfig),
    Litellm(LitellmConfig),
    SapAiCore(SapAiCoreConfig),
    TypeSafe(TypeSafeConfig),
    Mock(MockConfig),
}

/// `openai_api_type`: matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenAiApiType {
    OpenAi,
    Azure,
    AzureAd,
}

impl OpenAiApiType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::AzureAd => "azuread",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.to_lowercase().as_str() {
            "openai" => Some(Self::OpenAi),
            "azure" => Some(Self::Azure),
            "azuread" => Some(Self::AzureAd),
            _ => None,
        }
    }
}

/// Default `openai_api_base` for `openai_api_type: openai`.
pub const OPENAI_API_BASE: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// `openai_api_key` (resolvable).
    pub api_key: Secret,
    /// `openai_api_type`, default `openai`.
    pub api_type: OpenAiApiType,
    /// `openai_api_base`: required for azure types, defaulted to [`OPENAI_API_BASE`] for `openai`.
    pub api_base: String,
    /// `openai_api_version`: required for azure types; appended as `?api-version=` for `openai`.
    pub api_version: Option<String>,
    /// `openai_deployment_name`: azure types only (required there).
    pub deployment_name: Option<String>,
    /// `openai_organization`: `openai` type only.
    pub organization: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicConfig {
    /// `anthropic_api_key` (resolvable).
    pub api_key: Secret,
    /// `anthropic_version`, default `2023-06-01`.
    pub version: String,
    /// `anthropic_api_base`, default `https://api.anthropic.com/v1`.
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CohereConfig {
    /// `cohere_api_key` (resolvable).
    pub api_key: Secret,
    /// `cohere_api_base` (our addition; MLflow hard-codes `https://api.cohere.ai/v1`).
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeminiConfig {
    /// `gemini_api_key` (resolvable).
    pub api_key: Secret,
    /// `gemini_api_base` (our addition; MLflow hard-codes
    /// `https://generativelanguage.googleapis.com/v1beta/models`).
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PalmConfig {
    /// `palm_api_key` (resolvable).
    pub api_key: Secret,
    /// `palm_api_base` (our addition; MLflow hard-codes
    /// `https://generativelanguage.googleapis.com/v1beta3/models/`).
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ai21LabsConfig {
    /// `ai21labs_api_key` (resolvable).
    pub api_key: Secret,
    /// `ai21labs_api_base` (our addition; MLflow hard-codes `https://api.ai21.com/studio/v1`).
    /// The model name and a trailing `/` are appended at request time.
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MosaicMlConfig {
    /// `mosaicml_api_key` (resolvable).
    pub api_key: Secret,
    /// `mosaicml_api_base`, default `https://models.hosted-on.mosaicml.hosting`.
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MistralConfig {
    /// `mistral_api_key` (resolvable).
    pub api_key: Secret,
    /// `mistral_api_base` (our addition; MLflow hard-codes `https://api.mistral.ai/v1`).
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TogetherAiConfig {
    /// `togetherai_api_key` (resolvable).
    pub api_key: Secret,
    /// `togetherai_api_base` (our addition; MLflow hard-codes `https://api.together.xyz/v1`).
    pub api_base: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HuggingFaceTgiConfig {
    /// `hf_server_url` (required).
    pub server_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MlflowModelServingConfig {
    /// `model_server_url` (required).
    pub server_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BedrockConfig {
    /// `aws_config` (required; `{}` is the base shape).
    pub aws_config: AwsConfig,
    /// `aws_endpoint_url` (our addition). `None` means MLflow's
    /// `https://bedrock-runtime.<region>.amazonaws.com`, which depends on the region.
    pub endpoint_url: Option<String>,
}

/// Default `session_length_seconds` for the assume-role shape (15 minutes, as in MLflow).
pub const AWS_SESSION_LENGTH_SECONDS: u64 = 900;

/// The four `aws_config` shapes. None of their fields are resolvable (§1.4).
#[derive(Debug, Clone, PartialEq)]
pub enum AwsConfig {
    BearerToken {
        region: Option<String>,
        bearer_token: Secret,
    },
    AssumeRole {
        region: Option<String>,
        role_arn: String,
        session_length_seconds: u64,
    },
    StaticKeys {
        region: Option<String>,
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// Only a region: credentials come from the default AWS chain.
    Base { region: Option<String> },
}

impl AwsConfig {
    pub fn region(&self) -> Option<&str> {
        match self {
            Self::BearerToken { region, .. }
            | Self::AssumeRole { region, .. }
            | Self::StaticKeys { region, .. }
            | Self::Base { region } => region.as_deref(),
        }
    }
}

/// `groq`, `deepseek`, `xai`, `openrouter` and `ollama`: the provider itself is `Model::provider`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiCompatibleConfig {
    /// `api_key` (resolvable; required except for ollama, where it defaults to `ollama`, meaning
    /// "send no auth header").
    pub api_key: Secret,
    /// `api_base`, defaulted per provider (see [`default_api_base`]).
    pub api_base: String,
}

/// The OpenAI-compatible family's default `api_base`, per provider.
pub fn default_api_base(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Groq => Some("https://api.groq.com/openai/v1"),
        Provider::DeepSeek => Some("https://api.deepseek.com/v1"),
        Provider::Xai => Some("https://api.x.ai/v1"),
        Provider::OpenRouter => Some("https://openrouter.ai/api/v1"),
        Provider::Ollama => Some("http://localhost:11434/v1"),
        Provider::Portkey => Some("https://api.portkey.ai/v1"),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortkeyConfig {
    /// `api_key` (resolvable, required).
    pub api_key: Secret,
    /// `api_base`, default `https://api.portkey.ai/v1`.
    pub api_base: String,
    /// `portkey_provider`: the `x-portkey-provider` header.
    pub portkey_provider: Option<String>,
    /// `portkey_config`: the `x-portkey-config` header.
    pub portkey_config: Option<String>,
    /// `provider_api_key` (resolvable): the upstream provider's key.
    pub provider_api_key: Option<Secret>,
}

/// All optional: the Databricks SDK credential chain fills the gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabricksConfig {
    pub host: Option<String>,
    pub token: Option<Secret>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VertexAiConfig {
    /// `vertex_project` (required).
    pub project: String,
    pub location: Option<String>,
    /// `vertex_credentials`: a service-account JSON or path; kept secret.
    pub credentials: Option<Secret>,
    /// `vertex_anthropic_betas`: a list, or a comma-separated string.
    pub anthropic_betas: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LitellmConfig {
    pub provider: Option<String>,
    /// `litellm_auth_config` without `auth_mode` and without `api_key` (held in [`Self::api_key`]
    /// so it never shows in a `Debug` print).
    pub auth_config: Option<Map<String, Value>>,
    /// `litellm_auth_config.api_key` (resolvable).
    pub api_key: Option<Secret>,
}

/// SAP AI Core has no fields: its URL comes from `MLFLOW_GENAI_JUDGE_BASE_URL`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SapAiCoreConfig {}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeSafeConfig {
    /// `typesafe_api_key` (resolvable).
    pub api_key: Secret,
    /// `typesafe_api_base`, default `https://api.typesafe.ai/v1`.
    pub api_base: String,
}

/// The built-in `mock` provider: deterministic answers with no upstream. Every field is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Number of content chunks a streamed answer is split into (default 3, at least 1).
    pub chunks: u32,
    /// Delay between stream chunks, in milliseconds (default 0).
    pub chunk_delay_ms: u64,
    /// Delay before answering, in milliseconds (default 0).
    pub latency_ms: u64,
    /// When set, every request is answered with this HTTP status (400..=599) and `fail_message`.
    pub fail_status: Option<u16>,
    /// Message used with `fail_status` and `fail_after_chunks` (default `mock failure`).
    pub fail_message: String,
    /// When set, a stream fails with an error after this many chunks.
    pub fail_after_chunks: Option<u32>,
    /// Length of each embedding vector (default 8, 1..=8192).
    pub embedding_dims: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            chunks: 3,
            chunk_delay_ms: 0,
            latency_ms: 0,
            fail_status: None,
            fail_message: "mock failure".to_owned(),
            fail_after_chunks: None,
            embedding_dims: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_matches_case_and_separator_insensitively() {
        assert_eq!(Provider::parse("OpenAI"), Some(Provider::OpenAi));
        assert_eq!(
            Provider::parse("amazon_bedrock"),
            Some(Provider::AmazonBedrock)
        );
        assert_eq!(
            Provider::parse("HUGGINGFACE-TEXT-GENERATION-INFERENCE"),
            Some(Provider::HuggingFaceTgi)
        );
        assert_eq!(Provider::parse("vertex-ai"), Some(Provider::VertexAi));
        assert_eq!(Provider::parse("sap_ai_core"), Some(Provider::SapAiCore));
        assert_eq!(Provider::parse("Mock"), Some(Provider::Mock));
        assert_eq!(Provider::parse("foo"), None);
        assert_eq!(Provider::parse(""), None);
    }

    #[test]
    fn every_canonical_value_parses_to_itself() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p), "{p:?}");
        }
    }

    #[test]
    fn enum_repr_matches_python() {
        assert_eq!(Provider::OpenAi.enum_repr(), "Provider.OPENAI");
        assert_eq!(
            Provider::AmazonBedrock.enum_repr(),
            "Provider.AMAZON_BEDROCK"
        );
        assert_eq!(Provider::VertexAi.enum_repr(), "Provider.VERTEX_AI");
        assert_eq!(
            Provider::HuggingFaceTgi.enum_repr(),
            "Provider.HUGGINGFACE_TEXT_GENERATION_INFERENCE"
        );
    }

    #[test]
    fn display_names_follow_mlflow() {
        assert_eq!(Provider::Azure.display_name(), "OpenAI");
        assert_eq!(Provider::Xai.display_name(), "xAI");
        assert_eq!(Provider::AmazonBedrock.display_name(), "Amazon Bedrock");
        assert_eq!(Provider::Mock.display_name(), "Mock");
    }

    #[test]
    fn only_mock_may_omit_config() {
        assert!(Provider::OpenAi.config_required());
        assert!(Provider::SapAiCore.config_required());
        assert!(!Provider::Mock.config_required());
    }
}
