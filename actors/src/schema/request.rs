//! The validated unified requests (chat, completions, embeddings) and their upstream serialisation.
//!
//! These types are only ever built by [`UnifiedRequest::validate`](super::UnifiedRequest::validate),
//! so every value in them already passed MLflow's rules. `Serialize` produces what MLflow sends to
//! an OpenAI-style provider: nulls dropped, `n` always present, common fields in MLflow's order,
//! then the route's own fields, then unknown top-level keys in the order the client sent them.
//!
//! Deliberate differences from MLflow (DIFFERENCES #12): unknown keys of messages and content parts
//! (e.g. `name`, `cache_control`) are kept instead of dropped, and a tool's `parameters` JSON
//! Schema is forwarded as sent instead of being cut down to MLflow's few keywords.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::raw_extras::RawExtras;
use super::response::ToolCall;
use crate::config::EndpointType;

/// Parameters shared by chat and completions requests, in MLflow's field order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CommonParams {
    /// Number of choices; defaults to 1 and is always sent upstream, as MLflow does.
    pub n: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Map<String, Value>>,
    /// Only meaningful on `/v1/*`, where it names the endpoint; the invocation paths refuse it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
}

impl Default for CommonParams {
    fn default() -> Self {
        Self {
            n: 1,
            stop: None,
            max_tokens: None,
            max_completion_tokens: None,
            stream: None,
            stream_options: None,
            model: None,
            response_format: None,
            temperature: None,
            top_p: None,
            presence_penalty: None,
            frequency_penalty: None,
            top_k: None,
        }
    }
}

/// `response_format`: `{"type": ..., "json_schema"?: {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: ResponseFormatKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormatKind {
    Text,
    JsonObject,
    JsonSchema,
}

/// The structured-output envelope. `strict` defaults to true (MLflow's default, always sent);
/// unknown keys are kept, as MLflow does.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JsonSchemaSpec {
    pub name: String,
    #[schema(value_type = Object)]
    pub schema: Map<String, Value>,
    pub strict: bool,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// A chat request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChatRequest {
    #[serde(flatten)]
    pub common: CommonParams,
    pub messages: Vec<Message>,
    /// An empty list is allowed and forwarded as `[]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Unknown top-level keys, forwarded in the client's order (nulls dropped) as their JSON text.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: RawExtras,
}

/// A completions request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CompletionsRequest {
    #[serde(flatten)]
    pub common: CommonParams,
    pub prompt: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: RawExtras,
}

/// An embeddings request. Everything but `input` (including `model`, `stream`,
/// `encoding_format`, `dimensions`) is an unvalidated extra key, forwarded as sent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EmbeddingsRequest {
    pub input: EmbeddingsInput,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: RawExtras,
}

/// `input`: a string, strings, token ids, or batches of token ids.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingsInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
    TokenBatches(Vec<Vec<i64>>),
}

/// One chat message. `role` is free text, as in MLflow.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Message {
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_request_tool_calls"
    )]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Other keys of the message (OpenAI's `name`, vendor keys), forwarded with nulls dropped.
    /// MLflow drops them; we keep them on purpose.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// The participant `name`, when the client sent one as a string.
    pub fn name(&self) -> Option<&str> {
        self.extra.get("name").and_then(Value::as_str)
    }

    /// The content when it is a plain string.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            Some(MessageContent::Text(text)) => Some(text),
            _ => None,
        }
    }
}

/// `content`: a string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// A content part, discriminated on `type`. `extra` holds the part's other keys (kept, nulls
/// dropped): MLflow keeps them only for `reasoning` parts; we keep them for all.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
        #[serde(flatten)]
        #[schema(value_type = Object)]
        extra: Map<String, Value>,
    },
    ImageUrl {
        image_url: ImageUrl,
        #[serde(flatten)]
        #[schema(value_type = Object)]
        extra: Map<String, Value>,
    },
    InputAudio {
        input_audio: InputAudio,
        #[serde(flatten)]
        #[schema(value_type = Object)]
        extra: Map<String, Value>,
    },
    Reasoning {
        /// Defaults to `[]` when absent, and is then sent as `[]`, as MLflow does.
        summary: Vec<SummaryPart>,
        #[serde(flatten)]
        #[schema(value_type = Object)]
        extra: Map<String, Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ImageUrl {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<ImageDetail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    Auto,
    Low,
    High,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InputAudio {
    pub data: String,
    pub format: AudioFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    Wav,
    Mp3,
}

/// A reasoning summary item; `kind` is always `summary_text` (the only value MLflow accepts).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SummaryPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

/// A tool definition: `function`, or Databricks' `uc_function`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uc_function: Option<UcFunction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Function,
    UcFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FunctionDef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema as the client sent it. MLflow's shape rules are enforced (`properties`
    /// maps names to objects, `type` is `"object"`, added when absent as MLflow does); nothing
    /// else in it is checked or touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UcFunction {
    pub name: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// `tool_choice`: a mode string or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

/// `{"type": "function", "function": {"name": ...}}`; `kind` is always `function`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionName,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FunctionName {
    pub name: String,
}

/// Any of the three requests, as validated for an endpoint's type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UnifiedRequest {
    Chat(ChatRequest),
    Completions(CompletionsRequest),
    Embeddings(EmbeddingsRequest),
}

impl UnifiedRequest {
    pub fn endpoint_type(&self) -> EndpointType {
        match self {
            Self::Chat(_) => EndpointType::Chat,
            Self::Completions(_) => EndpointType::Completions,
            Self::Embeddings(_) => EndpointType::Embeddings,
        }
    }

    /// True when the client asked for a stream. Embeddings never stream: MLflow forwards their
    /// `stream` key upstream as an ordinary extra.
    pub fn is_stream(&self) -> bool {
        match self {
            Self::Chat(r) => r.common.stream == Some(true),
            Self::Completions(r) => r.common.stream == Some(true),
            Self::Embeddings(_) => false,
        }
    }

    /// Ok when the unknown keys may be built into a tree within the body's node limit (see
    /// [`RawExtras::check_tree_room`]), for providers that rework the payload as a tree.
    pub fn check_tree_room(&self) -> Result<(), crate::error::GatewayError> {
        match self {
            Self::Chat(r) => r.extra.check_tree_room(),
            Self::Completions(r) => r.extra.check_tree_room(),
            Self::Embeddings(r) => r.extra.check_tree_room(),
        }
    }

    /// The body's `model`, when it is a string (on embeddings it is an unvalidated extra key).
    pub fn model(&self) -> Option<String> {
        match self {
            Self::Chat(r) => r.common.model.clone(),
            Self::Completions(r) => r.common.model.clone(),
            Self::Embeddings(r) => r.extra.get_str("model"),
        }
    }

    /// True when the body carries a non-null `model` of any type: what the invocation paths
    /// refuse (an embeddings `model` is not type-checked, so `model()` alone would miss `1`).
    pub fn has_model(&self) -> bool {
        match self {
            // Null extras were dropped, so any `model` left is a non-null one.
            Self::Embeddings(r) => r.extra.get("model").is_some(),
            _ => self.model().is_some(),
        }
    }

    /// Removes `model` from the request (the `/v1/*` handlers drop it before the provider, as
    /// MLflow sets it to null) and returns it when it was a string.
    pub fn take_model(&mut self) -> Option<String> {
        match self {
            Self::Chat(r) => r.common.model.take(),
            Self::Completions(r) => r.common.model.take(),
            Self::Embeddings(r) => r
                .extra
                .remove("model")
                .and_then(|raw| serde_json::from_str::<String>(&raw).ok()),
        }
    }
}

/// Tool calls inside request messages are dumped like everything else in a request: without
/// nulls. (The same type in a response keeps its nulls, so it cannot carry this rule itself.)
fn serialize_request_tool_calls<S: Serializer>(
    calls: &Option<Vec<ToolCall>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Call<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        function: Function<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Function<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<&'a str>,
    }
    let calls = calls.as_deref().unwrap_or_default();
    serializer.collect_seq(calls.iter().map(|c| Call {
        id: &c.id,
        kind: &c.kind,
        function: Function {
            name: c.function.name.as_deref(),
            arguments: c.function.arguments.as_deref(),
        },
        thought_signature: c.thought_signature.as_deref(),
    }))
}
