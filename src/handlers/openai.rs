//! The OpenAI-compatible paths under `/v1`: the body's `model` names an endpoint or traffic route.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use switchyard_actors::config::EndpointType;
use switchyard_actors::error::{ErrorKind, GatewayError};

use super::invoke::{failed, invoke, read_request};
use super::{target_type, WorkerState};
use crate::error::ApiFamily;

#[utoipa::path(post, path = "/v1/chat/completions", request_body = switchyard_actors::schema::ChatRequest,
    responses((status = 200, description = "Chat completion, or an SSE stream ending with `data: [DONE]`")), tag = "openai")]
pub async fn chat(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    handle(EndpointType::Chat, request, payload, state).await
}

#[utoipa::path(post, path = "/v1/completions", request_body = switchyard_actors::schema::CompletionsRequest,
    responses((status = 200, description = "Text completion, or an SSE stream ending with `data: [DONE]`")), tag = "openai")]
pub async fn completions(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    handle(EndpointType::Completions, request, payload, state).await
}

#[utoipa::path(post, path = "/v1/embeddings", request_body = switchyard_actors::schema::EmbeddingsRequest,
    responses((status = 200, description = "Embeddings")), tag = "openai")]
pub async fn embeddings(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    handle(EndpointType::Embeddings, request, payload, state).await
}

async fn handle(
    kind: EndpointType,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let mut record = state.record(&request);
    let table = state.table();
    let outcome = async {
        // The body is validated against the path's schema first (as MLflow does), then `model`
        // picks the target.
        let mut unified =
            read_request(&request, payload, state.body_limit, state.max_json_nodes, kind).await?;
        let Some(name) = unified.take_model() else {
            return Err(GatewayError::new(
                ErrorKind::Validation,
                422,
                json!([{"type": "missing", "loc": ["body", "model"], "msg": "Field required: 'model' must name an endpoint or route", "input": null}]),
            ));
        };
        let Some(target) = table.target(&name) else {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                404,
                format!("The model '{name}' does not exist: no endpoint or route has that name."),
            ));
        };
        if target_type(target) != kind {
            return Err(GatewayError::new(
                ErrorKind::WrongEndpointType,
                400,
                {
                    // MLflow's wording, article included ("an embeddings endpoint").
                    let article = if kind == EndpointType::Embeddings { "an" } else { "a" };
                    format!("Endpoint '{name}' is not {article} {} endpoint.", kind.route_word())
                },
            ));
        }
        Ok((name, target, unified))
    }
    .await;
    match outcome {
        Ok((name, target, unified)) => {
            record.target(&name);
            let client_key = state.key_policy.key(&request);
            invoke(
                target,
                unified,
                &state.invoke_context(ApiFamily::OpenAi, &request, &client_key),
                record,
            )
            .await
        }
        Err(error) => failed(&error, ApiFamily::OpenAi, record),
    }
}
