//! MLflow's invocation paths: `POST /endpoints/{name}/invocations` and its twin under `/gateway/`.

use actix_web::{web, HttpRequest, HttpResponse};
use switchyard_actors::config::Provider;
use switchyard_actors::dispatch::Target;
use switchyard_actors::error::{ErrorKind, GatewayError};

use super::invoke::{failed, invoke, read_request};
use super::{target_type, WorkerState};
use crate::error::{not_found, ApiFamily};

/// MLflow's text when a client tries to choose the model on an invocation path.
const MODEL_NOT_PERMITTED: &str = "The parameter 'model' is not permitted to be passed. The route being queried already defines a model instance.";

/// Invoke an endpoint or traffic route with a unified chat, completions or embeddings body.
#[utoipa::path(
    post,
    path = "/endpoints/{name}/invocations",
    params(("name" = String, Path, description = "Endpoint or traffic-route name")),
    request_body(content = Object, description = "A unified chat, completions or embeddings request, by the endpoint's type"),
    responses(
        (status = 200, description = "Unified response, or an SSE stream when `stream` is true"),
        (status = 404, description = "No endpoint or route with that name"),
        (status = 422, description = "The body failed validation"),
        (status = 501, description = "The provider does not implement this route type"),
    ),
    tag = "invocations"
)]
pub async fn invocations(
    name: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let mut record = state.record(&request);
    let table = state.table();
    let Some(target) = table.target(&name) else {
        record.status(404);
        return not_found();
    };
    record.target(&name);
    let outcome = async {
        let unified = read_request(
            &request,
            payload,
            state.body_limit,
            state.max_json_nodes,
            target_type(target),
        )
        .await?;
        // MLflow model serving takes the client's `model` (it forwards it inside `params`).
        let client_model_allowed = match target {
            Target::Endpoint(endpoint) => {
                endpoint.endpoint.model.provider == Provider::MlflowModelServing
            }
            Target::Route(_) => false,
        };
        if unified.has_model() && !client_model_allowed {
            return Err(GatewayError::new(
                ErrorKind::ModelNotPermitted,
                422,
                MODEL_NOT_PERMITTED,
            ));
        }
        Ok(unified)
    }
    .await;
    match outcome {
        Ok(unified) => {
            let client_key = state.key_policy.key(&request);
            invoke(
                target,
                unified,
                &state.invoke_context(ApiFamily::Mlflow, &request, &client_key),
                record,
            )
            .await
        }
        Err(error) => failed(&error, ApiFamily::Mlflow, record),
    }
}
