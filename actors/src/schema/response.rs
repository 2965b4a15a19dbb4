//! The unified responses and stream chunks (chat, completions, embeddings) that providers produce
//! and handlers serialise, with MLflow's field order and null rules.
//!
//! Unlike requests, responses emit `null` for unset optional fields, with three exceptions MLflow
//! also makes: `ToolCall.thought_signature`, `ToolCallDelta.thought_signature` and
//! `ChatUsage.prompt_tokens_details` are omitted when absent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

fn chat_completion() -> String {
    "chat.completion".to_owned()
}
fn chat_completion_chunk() -> String {
    "chat.completion.chunk".to_owned()
}
fn text_completion() -> String {
    "text_completion".to_owned()
}
fn text_completion_chunk() -> String {
    "text_completion_chunk".to_owned()
}
fn list() -> String {
    "list".to_owned()
}
fn embedding() -> String {
    "embedding".to_owned()
}
fn function() -> String {
    "function".to_owned()
}

/// A tool call, in a response message or in a request's assistant message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function")]
    pub kind: String,
    pub function: FunctionCall,
    /// Gemini's thought signature, echoed back on later turns; omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl ToolCall {
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function(),
            function: FunctionCall {
                name: Some(name.into()),
                arguments: Some(arguments.into()),
            },
            thought_signature: None,
        }
    }
}

/// The function part of a tool call; both keys are always emitted in responses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ToSchema)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// `usage` of chat responses and chunks. The three counters are always emitted (null when
/// unknown); provider-specific counters pass through in `extra`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ToSchema)]
pub struct ChatUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl ChatUsage {
    pub fn new(prompt: Option<u64>, completion: Option<u64>, total: Option<u64>) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: total,
            ..Self::default()
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ToSchema)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// The assistant message of a chat choice; `role`, `content`, `tool_calls` and `refusal` are
/// always emitted (MLflow never emits `tool_call_id` here).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ResponseMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A non-streaming chat response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "chat_completion")]
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: ChatUsage,
    /// The provider string of the endpoint that served the request.
    pub provider: String,
}

impl ChatResponse {
    /// A response with one assistant choice holding `text`.
    pub fn assistant_text(
        id: Option<String>,
        created: i64,
        model: impl Into<String>,
        text: impl Into<String>,
        finish_reason: Option<String>,
        usage: ChatUsage,
        provider: impl Into<String>,
    ) -> Self {
        Self {
            id,
            object: chat_completion(),
            created,
            model: model.into(),
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".to_owned(),
                    content: Some(text.into()),
                    tool_calls: None,
                    refusal: None,
                },
                finish_reason,
            }],
            usage,
            provider: provider.into(),
        }
    }
}

/// A tool call fragment in a stream; `function` is always emitted with both keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: FunctionCall,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

/// What a chat chunk adds; all three keys are always emitted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ToSchema)]
pub struct ChatDelta {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ChatChunkChoice {
    pub index: u32,
    #[serde(default)]
    pub finish_reason: Option<String>,
    pub delta: ChatDelta,
}

/// One chat stream chunk (`usage` is emitted as null when absent).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "chat_completion_chunk")]
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChunkChoice>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
    pub provider: String,
}

impl ChatChunk {
    /// A chunk with one choice at `index` carrying `delta`.
    pub fn delta(
        id: Option<String>,
        created: i64,
        model: impl Into<String>,
        index: u32,
        delta: ChatDelta,
        finish_reason: Option<String>,
        provider: impl Into<String>,
    ) -> Self {
        Self {
            id,
            object: chat_completion_chunk(),
            created,
            model: model.into(),
            choices: vec![ChatChunkChoice {
                index,
                finish_reason,
                delta,
            }],
            usage: None,
            provider: provider.into(),
        }
    }
}

/// `usage` of completions responses and chunks; all three keys always emitted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ToSchema)]
pub struct CompletionsUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct CompletionsChoice {
    pub index: u32,
    pub text: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A non-streaming completions response (no `provider` field, as in MLflow).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct CompletionsResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "text_completion")]
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<CompletionsChoice>,
    pub usage: CompletionsUsage,
}

impl CompletionsResponse {
    /// A response with one choice holding `text`.
    pub fn text(
        id: Option<String>,
        created: i64,
        model: impl Into<String>,
        text: impl Into<String>,
        finish_reason: Option<String>,
        usage: CompletionsUsage,
    ) -> Self {
        Self {
            id,
            object: text_completion(),
            created,
            model: model.into(),
            choices: vec![CompletionsChoice {
                index: 0,
                text: text.into(),
                finish_reason,
            }],
            usage,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct CompletionsChunkChoice {
    pub index: u32,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// One completions stream chunk. `object` is `text_completion_chunk` (Gemini overrides it with
/// `text_completion.chunk`, which is why it is a plain string).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct CompletionsChunk {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "text_completion_chunk")]
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<CompletionsChunkChoice>,
    #[serde(default)]
    pub usage: Option<CompletionsUsage>,
}

impl CompletionsChunk {
    /// A chunk with one choice at `index` carrying `text`.
    pub fn text(
        id: Option<String>,
        created: i64,
        model: impl Into<String>,
        index: u32,
        text: Option<String>,
        finish_reason: Option<String>,
    ) -> Self {
        Self {
            id,
            object: text_completion_chunk(),
            created,
            model: model.into(),
            choices: vec![CompletionsChunkChoice {
                index,
                finish_reason,
                text,
            }],
            usage: None,
        }
    }
}

/// An embedding vector, or the base64 string an OpenAI upstream returns for
/// `encoding_format: "base64"`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(untagged)]
pub enum Embedding {
    Floats(Vec<f64>),
    Base64(String),
    /// The upstream's own text of a vector, passed on without parsing its numbers (see
    /// [`RawNumbers`]); only providers build it, so it is never read from JSON.
    #[serde(skip_deserializing)]
    #[schema(value_type = Vec<f64>)]
    Raw(RawNumbers),
}

/// A JSON array of numbers kept as the upstream wrote it. Parsing 1,536 floats and printing
/// them again was most of an embeddings request's CPU time; copying the text is not. The client
/// reads the upstream's own digits, which is if anything more exact: serde_json's parser can
/// move a long number by an ulp before it is printed again.
#[derive(Serialize, Clone, Debug)]
#[serde(transparent)]
pub struct RawNumbers(Box<serde_json::value::RawValue>);

impl RawNumbers {
    /// Longest number token taken as is: with an exponent of at most two digits, every such
    /// number is finite as an `f64`, as `Vec<f64>` would have required.
    const MAX_NUMBER_LEN: usize = 32;

    /// `raw` when it is an array whose elements are all numbers written as floats that fit an
    /// `f64`; anything else (nested values, strings, `null`, a huge exponent, an integer, which
    /// MLflow would print as a float) is `None`, for the caller to read the usual way.
    pub fn new(raw: Box<serde_json::value::RawValue>) -> Option<Self> {
        let text = raw.get().as_bytes();
        let inner = text.strip_prefix(b"[")?.strip_suffix(b"]")?;
        // One pass over the bytes (the vector is kilobytes): `raw` is valid JSON, so an array
        // of nothing but these bytes holds numbers only, and each token needs three checks.
        let mut token = NumberToken::default();
        for &byte in inner {
            match byte {
                b'0'..=b'9' => token.digit(),
                b'.' => token.other(true),
                b'e' | b'E' => token.exponent(),
                b'-' | b'+' => token.other(false),
                b',' => {
                    if !token.fits() {
                        return None;
                    }
                    token = NumberToken::default();
                }
                b' ' | b'\t' | b'\n' | b'\r' => {}
                _ => return None,
            }
        }
        // Only an empty array ends without a token: `raw` is valid JSON, so no trailing comma.
        (token.len == 0 || token.fits()).then_some(Self(raw))
    }
}

/// What [`RawNumbers::new`] tracks of the number it is reading.
#[derive(Default)]
struct NumberToken {
    len: usize,
    /// Has a `.` or an exponent: written as a float.
    float: bool,
    /// Digits after the `e`, once there is one.
    exponent_digits: Option<usize>,
}

impl NumberToken {
    fn digit(&mut self) {
        self.len += 1;
        if let Some(digits) = self.exponent_digits.as_mut() {
            *digits += 1;
        }
    }

    fn other(&mut self, point: bool) {
        self.len += 1;
        self.float |= point;
    }

    fn exponent(&mut self) {
        self.other(true);
        self.exponent_digits = Some(0);
    }

    fn fits(&self) -> bool {
        self.float
            && self.len <= RawNumbers::MAX_NUMBER_LEN
            && self.exponent_digits.is_none_or(|digits| digits <= 2)
    }
}

impl Embedding {
    /// An upstream's embedding as it wrote it: a string is base64, an array of plain numbers is
    /// kept as text; anything else is `None`, for the caller to read the usual way.
    pub fn from_raw(raw: Box<serde_json::value::RawValue>) -> Option<Self> {
        if raw.get().starts_with('"') {
            return serde_json::from_str(raw.get()).ok().map(Embedding::Base64);
        }
        RawNumbers::new(raw).map(Embedding::Raw)
    }
}

impl PartialEq for RawNumbers {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct EmbeddingObject {
    #[serde(default = "embedding")]
    pub object: String,
    pub embedding: Embedding,
    pub index: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ToSchema)]
pub struct EmbeddingsUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
}

/// An embeddings response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct EmbeddingsResponse {
    #[serde(default = "list")]
    pub object: String,
    pub data: Vec<EmbeddingObject>,
    pub model: String,
    pub usage: EmbeddingsUsage,
}

impl EmbeddingsResponse {
    /// A response whose `data` holds `embeddings` in order.
    pub fn new(
        model: impl Into<String>,
        embeddings: Vec<Embedding>,
        usage: EmbeddingsUsage,
    ) -> Self {
        Self {
            object: list(),
            data: embeddings
                .into_iter()
                .zip(0u32..)
                .map(|(embedding, index)| EmbeddingObject {
                    object: self::embedding(),
                    embedding,
                    index,
                })
                .collect(),
            model: model.into(),
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises, parses back, and checks both directions against the captured bytes.
    fn round_trip<T>(captured: &str) -> T
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let parsed: T = serde_json::from_str(captured).expect("captured example parses");
        let out = serde_json::to_string(&parsed).expect("serialises");
        assert_eq!(out, captured);
        let again: T = serde_json::from_str(&out).expect("re-parses");
        assert_eq!(again, parsed);
        parsed
    }

    // Captured from MLflow 3.17.2 (spec §4.2), joined onto one line.
    #[test]
    fn chat_response_matches_capture() {
        let r: ChatResponse = round_trip(concat!(
            r#"{"id":"chatcmpl-abc123","object":"chat.completion","created":1677858242,"model":"gpt-4o-mini-2024-07-18","#,
            r#""choices":[{"index":0,"message":{"role":"assistant","content":"\n\nThis is a test!","tool_calls":null,"refusal":null},"finish_reason":"stop"}],"#,
            r#""usage":{"prompt_tokens":13,"completion_tokens":7,"total_tokens":20,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"#,
            r#""provider":"openai"}"#
        ));
        assert_eq!(r.usage.extra.len(), 1);
        assert_eq!(
            r.usage
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens),
            Some(0)
        );
    }

    #[test]
    fn chat_response_constructor_and_null_rules() {
        let r = ChatResponse::assistant_text(
            None,
            1,
            "m",
            "hi",
            None,
            ChatUsage::new(Some(1), None, None),
            "mock",
        );
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some(concat!(
                r#"{"id":null,"object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"#,
                r#""message":{"role":"assistant","content":"hi","tool_calls":null,"refusal":null},"finish_reason":null}],"#,
                r#""usage":{"prompt_tokens":1,"completion_tokens":null,"total_tokens":null},"provider":"mock"}"#
            ))
        );
    }

    #[test]
    fn tool_calls_in_responses_keep_nulls_but_not_thought_signature() {
        let mut call = ToolCall::function("call_1", "f", "{}");
        call.function.name = None;
        let msg = ResponseMessage {
            role: "assistant".into(),
            content: None,
            tool_calls: Some(vec![call.clone()]),
            refusal: None,
        };
        assert_eq!(
            serde_json::to_string(&msg).ok().as_deref(),
            Some(
                r#"{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":null,"arguments":"{}"}}],"refusal":null}"#
            )
        );
        call.thought_signature = Some("sig".into());
        assert_eq!(
            serde_json::to_string(&call).ok().as_deref(),
            Some(
                r#"{"id":"call_1","type":"function","function":{"name":null,"arguments":"{}"},"thought_signature":"sig"}"#
            )
        );
    }

    // Captured from MLflow 3.17.2 (spec §4.3).
    #[test]
    fn chat_chunk_matches_capture() {
        let c: ChatChunk = round_trip(
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant","content":"","tool_calls":null}}],"usage":null,"provider":"openai"}"#,
        );
        let built = ChatChunk::delta(
            Some("chatcmpl-1".into()),
            1,
            "gpt-4o-mini",
            0,
            ChatDelta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                tool_calls: None,
            },
            None,
            "openai",
        );
        assert_eq!(built, c);
    }

    #[test]
    fn tool_call_delta_shape() {
        round_trip::<ToolCallDelta>(
            r#"{"index":0,"id":null,"type":null,"function":{"name":null,"arguments":"{\"a\""}}"#,
        );
        round_trip::<ToolCallDelta>(
            r#"{"index":1,"id":"c","type":"function","function":{"name":"f","arguments":""},"thought_signature":"s"}"#,
        );
    }

    #[test]
    fn completions_shapes() {
        round_trip::<CompletionsResponse>(
            r#"{"id":"cmpl-1","object":"text_completion","created":2,"model":"m","choices":[{"index":0,"text":"hi","finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        );
        round_trip::<CompletionsResponse>(
            r#"{"id":null,"object":"text_completion","created":2,"model":"m","choices":[{"index":0,"text":"","finish_reason":null}],"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null}}"#,
        );
        let chunk: CompletionsChunk = round_trip(
            r#"{"id":null,"object":"text_completion_chunk","created":3,"model":"m","choices":[{"index":0,"finish_reason":null,"text":"x"}],"usage":null}"#,
        );
        assert_eq!(
            chunk,
            CompletionsChunk::text(None, 3, "m", 0, Some("x".into()), None)
        );
        round_trip::<CompletionsChunk>(
            r#"{"id":"a","object":"text_completion.chunk","created":3,"model":"m","choices":[{"index":0,"finish_reason":"stop","text":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        );
    }

    #[test]
    fn embeddings_shapes() {
        let r: EmbeddingsResponse = round_trip(
            r#"{"object":"list","data":[{"object":"embedding","embedding":[0.1,-0.25,1.0],"index":0},{"object":"embedding","embedding":"AAAA","index":1}],"model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}"#,
        );
        let built = EmbeddingsResponse::new(
            "text-embedding-3-small",
            vec![
                Embedding::Floats(vec![0.1, -0.25, 1.0]),
                Embedding::Base64("AAAA".into()),
            ],
            EmbeddingsUsage {
                prompt_tokens: Some(4),
                total_tokens: Some(4),
            },
        );
        assert_eq!(built, r);
        // Integers from an upstream become floats, as pydantic's `list[float]` makes them.
        let ints: EmbeddingObject =
            serde_json::from_str(r#"{"embedding":[0,1],"index":0}"#).expect("parses");
        assert_eq!(
            serde_json::to_string(&ints).ok().as_deref(),
            Some(r#"{"object":"embedding","embedding":[0.0,1.0],"index":0}"#)
        );
    }

    #[test]
    fn raw_numbers_take_only_arrays_of_finite_floats() {
        let raw = |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
        for taken in [
            "[]",
            "[ ]",
            "[1.0]",
            "[-0.5, 1e5,2E-05 , 3.25e+10]",
            "[0.00000000000000000000000000001]",
        ] {
            let numbers = RawNumbers::new(raw(taken)).expect(taken);
            assert_eq!(serde_json::to_string(&numbers).unwrap(), taken);
        }
        for refused in [
            "[1]",
            "[0.5, 1]",
            "[1e100]",
            "[1.0e-400]",
            "[1234567890123456789012345678901.5]",
            "[null]",
            "[true]",
            "[\"1.0\"]",
            "[[1.0]]",
            "{}",
            "\"AAAA\"",
        ] {
            assert!(RawNumbers::new(raw(refused)).is_none(), "{refused}");
        }
    }
}
