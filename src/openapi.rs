//! The OpenAPI document served at `/openapi.json` and rendered by the bundled Swagger UI at `/docs/`.

use switchyard_actors::schema;
use utoipa::OpenApi;

use crate::handlers::{metadata, mlflow, openai, ops};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard",
        description = "LLM gateway with the MLflow AI Gateway's API: endpoint metadata, unified invocations and OpenAI-compatible paths."
    ),
    paths(
        ops::health,
        ops::metrics,
        metadata::list_endpoints,
        metadata::get_endpoint,
        metadata::get_limits,
        metadata::set_limits,
        mlflow::invocations,
        openai::chat,
        openai::completions,
        openai::embeddings,
    ),
    components(schemas(
        schema::ChatRequest,
        schema::CompletionsRequest,
        schema::EmbeddingsRequest,
        schema::ChatResponse,
        schema::CompletionsResponse,
        schema::EmbeddingsResponse,
        schema::ChatChunk,
        schema::CompletionsChunk,
        metadata::EndpointView,
        metadata::EndpointPage,
        metadata::ModelView,
        metadata::LimitView,
        metadata::LegacyRouteView,
    ))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
