//! The unified request, response and stream-chunk schemas (MLflow's `llm/v1/*` shapes), request
//! body parsing, and validation into MLflow's pydantic-style 422 details.
//!
//! - [`parse_request_body`]: HTTP body bytes to a checked, counted [`BodyObject`] whose members are
//!   still JSON text, with FastAPI's errors and the node limit; [`parse_json_body`] builds a tree.
//! - [`UnifiedRequest::from_body`]: a body object to a typed, validated request for an endpoint
//!   type, unknown keys kept as text ([`RawExtras`]); [`UnifiedRequest::validate`] from a tree.
//! - `Serialize` on the request types: the payload MLflow sends upstream (nulls dropped, `n`
//!   always present, extra keys kept in order).
//! - [`response`]: what providers produce and handlers serialise.

mod body;
mod lax;
mod pyjson;
mod raw_extras;
mod request;
pub mod response;
mod scan;
mod validate;
mod validate_chat;

#[cfg(test)]
mod mlflow_cases;
#[cfg(test)]
mod tests;

pub use body::{
    is_json_content_type, parse_json_body, parse_json_value, parse_request_body, BodyObject,
    MAX_JSON_NODES_SETTING,
};
pub use raw_extras::RawExtras;
pub use request::{
    AudioFormat, ChatRequest, CommonParams, CompletionsRequest, ContentPart, EmbeddingsInput,
    EmbeddingsRequest, FunctionDef, FunctionName, ImageDetail, ImageUrl, InputAudio,
    JsonSchemaSpec, Message, MessageContent, NamedToolChoice, ResponseFormat, ResponseFormatKind,
    SummaryPart, Tool, ToolChoice, ToolChoiceMode, ToolKind, UcFunction, UnifiedRequest,
};
pub use response::{
    ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatResponse, ChatUsage, CompletionsChoice,
    CompletionsChunk, CompletionsChunkChoice, CompletionsResponse, CompletionsUsage, Embedding,
    EmbeddingObject, EmbeddingsResponse, EmbeddingsUsage, FunctionCall, PromptTokensDetails,
    ResponseMessage, ToolCall, ToolCallDelta,
};
