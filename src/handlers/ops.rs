//! Operational paths: health, the docs redirect, the JSON 404/405 fallbacks and Starlette-style
//! trailing-slash redirects.

use actix_web::dev::ResourceDef;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::not_found;

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "`{\"status\":\"OK\"}`")), tag = "ops")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "OK"}))
}

/// Prometheus text exposition of every metric (see the `metrics` module for names and labels).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")), tag = "ops")]
pub async fn metrics(state: actix_web::web::Data<super::WorkerState>) -> HttpResponse {
    let body = state
        .metrics
        .render(&state.reloads, &state.breakers, &state.limiter.stats);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

pub async fn root() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

pub async fn favicon() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"detail": "favicon.ico not found"}))
}

/// Unknown paths: when the same path with the trailing slash added or removed exists, answer 307
/// to it (as MLflow's Starlette does, so `GET /api/2.0/endpoints` works); otherwise JSON 404.
pub async fn fallback(request: HttpRequest) -> HttpResponse {
    let path = request.path();
    let alternate = match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        Some(_) => return not_found(),
        None => format!("{path}/"),
    };
    if crate::server::ROUTED_PATHS
        .iter()
        .any(|pattern| ResourceDef::new(*pattern).is_match(&alternate))
    {
        let location = match request.query_string() {
            "" => alternate,
            query => format!("{alternate}?{query}"),
        };
        return HttpResponse::TemporaryRedirect()
            .insert_header((header::LOCATION, location))
            .finish();
    }
    not_found()
}
