//! Read-only views of the running config: MLflow's endpoint list/get (with its paging tokens), the
//! legacy route views, the 3.0 endpoint and traffic-route views, and the limits stubs MLflow
//! answers with 501. No provider config or secret is ever part of these bodies.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchyard_actors::config::{Endpoint, Limit, TrafficRoute};

use super::invoke::read_json;
use super::WorkerState;

/// MLflow's page size for endpoint listings.
pub const PAGE_SIZE: usize = 3000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelView {
    name: Option<String>,
    provider: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LimitView {
    calls: u64,
    key: Option<String>,
    renewal_period: String,
}

/// An endpoint as MLflow's list/get APIs show it (key order matters to byte-exact clients).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    name: String,
    endpoint_type: String,
    model: ModelView,
    endpoint_url: String,
    limit: Option<LimitView>,
}

/// The legacy (MLflow 2.x) route view.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LegacyRouteView {
    name: String,
    route_type: String,
    model: ModelView,
    route_url: String,
    limit: Option<LimitView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointPage {
    endpoints: Vec<EndpointView>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    page_token: Option<String>,
}

fn model_view(endpoint: &Endpoint) -> ModelView {
    ModelView {
        name: endpoint.model.name.clone(),
        provider: endpoint.model.provider.as_str().to_owned(),
    }
}

fn limit_view(limit: &Option<Limit>) -> Option<LimitView> {
    limit.as_ref().map(|l| LimitView {
        calls: l.calls,
        key: l.key.clone(),
        renewal_period: l.renewal_period.clone(),
    })
}

fn invocation_url(name: &str) -> String {
    format!("/gateway/{name}/invocations")
}

fn endpoint_view(endpoint: &Endpoint) -> EndpointView {
    EndpointView {
        name: endpoint.name.clone(),
        endpoint_type: endpoint.endpoint_type.as_str().to_owned(),
        model: model_view(endpoint),
        endpoint_url: invocation_url(&endpoint.name),
        limit: limit_view(&endpoint.limit),
    }
}

fn legacy_view(endpoint: &Endpoint) -> LegacyRouteView {
    LegacyRouteView {
        name: endpoint.name.clone(),
        route_type: endpoint.endpoint_type.as_str().to_owned(),
        model: model_view(endpoint),
        route_url: invocation_url(&endpoint.name),
        limit: limit_view(&endpoint.limit),
    }
}

fn route_view(route: &TrafficRoute) -> Value {
    json!({
        "name": route.name,
        "task_type": route.task_type.as_str(),
        "destinations": route.destinations.iter()
            .map(|d| json!({"name": d.name, "traffic_percentage": d.traffic_percentage}))
            .collect::<Vec<_>>(),
        "routing_strategy": route.routing_strategy,
    })
}

/// Encodes a page start as MLflow does: base64 of Python's `json.dumps({"index": N})`.
pub fn encode_page_token(index: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"index\": {index}}}"))
}

/// Decodes a page token; any JSON spacing is accepted, a negative or malformed one is refused.
pub fn decode_page_token(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let value: Value = serde_json::from_slice(&raw).ok()?;
    usize::try_from(value.get("index")?.as_u64()?).ok()
}

/// Selects one page of `items` for `token`; `None` when the token is not one we issued.
fn page<'a, T>(items: &'a [T], token: Option<&str>) -> Option<(&'a [T], Option<String>)> {
    let start = match token {
        None | Some("") => 0,
        Some(token) => decode_page_token(token)?,
    };
    if start >= items.len() {
        return Some((&[], None));
    }
    let end = (start + PAGE_SIZE).min(items.len());
    let next = (end < items.len()).then(|| encode_page_token(end));
    Some((&items[start..end], next))
}

/// MLflow answers a bad token with a plain-text 500; a 400 that says what is wrong is better.
fn invalid_page_token() -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "detail": "Invalid page_token: expected the base64 token returned as next_page_token by a previous page."
    }))
}

fn endpoint_not_found(name: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "detail": format!("The endpoint '{name}' is not present or active on the server. Please verify the endpoint name.")
    }))
}

fn route_not_found(name: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "detail": format!("The route '{name}' is not present or active on the server. Please verify the route name.")
    }))
}

/// List the configured endpoints (traffic routes are not listed), 3000 per page.
#[utoipa::path(get, path = "/api/2.0/endpoints/", params(("page_token" = Option<String>, Query, description = "next_page_token of the previous page")),
    responses((status = 200, body = EndpointPage), (status = 400, description = "Invalid page token")), tag = "endpoints")]
pub async fn list_endpoints(
    query: web::Query<PageQuery>,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let table = state.table();
    match page(&table.config.endpoints, query.page_token.as_deref()) {
        Some((items, next)) => HttpResponse::Ok().json(EndpointPage {
            endpoints: items.iter().map(|e| endpoint_view(e)).collect(),
            next_page_token: next,
        }),
        None => invalid_page_token(),
    }
}

/// One endpoint by name.
#[utoipa::path(get, path = "/api/2.0/endpoints/{name}", params(("name" = String, Path, description = "Endpoint name")),
    responses((status = 200, body = EndpointView), (status = 404, description = "No such endpoint")), tag = "endpoints")]
pub async fn get_endpoint(name: web::Path<String>, state: web::Data<WorkerState>) -> HttpResponse {
    let table = state.table();
    match table.config.endpoint(&name) {
        Some(endpoint) => HttpResponse::Ok().json(endpoint_view(endpoint)),
        None => endpoint_not_found(&name),
    }
}

/// Legacy list: `{"routes": [...], "next_page_token": ...}`.
pub async fn list_legacy_routes(
    query: web::Query<PageQuery>,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let table = state.table();
    match page(&table.config.endpoints, query.page_token.as_deref()) {
        Some((items, next)) => HttpResponse::Ok().json(json!({
            "routes": items.iter().map(|e| legacy_view(e)).collect::<Vec<_>>(),
            "next_page_token": next,
        })),
        None => invalid_page_token(),
    }
}

pub async fn get_legacy_route(
    name: web::Path<String>,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let table = state.table();
    match table.config.endpoint(&name) {
        Some(endpoint) => HttpResponse::Ok().json(legacy_view(endpoint)),
        None => route_not_found(&name),
    }
}

/// A traffic-split route's configuration.
pub async fn get_traffic_route(
    name: web::Path<String>,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let table = state.table();
    match table.config.route(&name) {
        Some(route) => HttpResponse::Ok().json(route_view(route)),
        None => route_not_found(&name),
    }
}

#[utoipa::path(get, path = "/api/2.0/endpoints/limits/{endpoint}", params(("endpoint" = String, Path, description = "Endpoint name")),
    responses((status = 501, description = "Not available, as in MLflow")), tag = "endpoints")]
pub async fn get_limits() -> HttpResponse {
    HttpResponse::NotImplemented()
        .json(json!({"detail": "The get_limits API is not available yet."}))
}

/// MLflow validates `{"route": str, "limits": [object]}` before answering 501.
#[utoipa::path(post, path = "/api/2.0/endpoints/limits/", request_body = Object,
    responses((status = 501, description = "Not available, as in MLflow"), (status = 422, description = "Invalid body")), tag = "endpoints")]
pub async fn set_limits(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let body = match read_json(&request, payload, state.body_limit, state.max_json_nodes).await {
        Ok(body) => body,
        Err(error) => return crate::error::error_response(&error, crate::error::ApiFamily::Mlflow),
    };
    let mut problems = Vec::new();
    match body.get("route") {
        None => problems.push(json!({"type": "missing", "loc": ["body", "route"], "msg": "Field required", "input": body})),
        Some(Value::String(_)) => {}
        Some(other) => problems.push(json!({"type": "string_type", "loc": ["body", "route"], "msg": "Input should be a valid string", "input": other})),
    }
    match body.get("limits") {
        None => problems.push(json!({"type": "missing", "loc": ["body", "limits"], "msg": "Field required", "input": body})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    problems.push(json!({"type": "dict_type", "loc": ["body", "limits", i], "msg": "Input should be a valid dictionary", "input": item}));
                }
            }
        }
        Some(other) => problems.push(json!({"type": "list_type", "loc": ["body", "limits"], "msg": "Input should be a valid list", "input": other})),
    }
    if !problems.is_empty() {
        return HttpResponse::UnprocessableEntity().json(json!({ "detail": problems }));
    }
    HttpResponse::NotImplemented()
        .json(json!({"detail": "The set_limits API is not available yet."}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_match_mlflows_encoding() {
        assert_eq!(encode_page_token(3000), "eyJpbmRleCI6IDMwMDB9");
        assert_eq!(decode_page_token("eyJpbmRleCI6IDMwMDB9"), Some(3000));
        assert_eq!(decode_page_token("not base64!"), None);
        let negative = base64::engine::general_purpose::STANDARD.encode("{\"index\": -1}");
        assert_eq!(decode_page_token(&negative), None);
    }

    #[test]
    fn paging_splits_at_page_size() {
        let items: Vec<usize> = (0..PAGE_SIZE + 5).collect();
        let (first, next) = page(&items, None).unwrap();
        assert_eq!(first.len(), PAGE_SIZE);
        let next = next.unwrap();
        let (second, last) = page(&items, Some(&next)).unwrap();
        assert_eq!(second, &[3000, 3001, 3002, 3003, 3004]);
        assert!(last.is_none());
        let past_end = encode_page_token(10_000);
        let (empty, none) = page(&items, Some(&past_end)).unwrap();
        assert!(empty.is_empty() && none.is_none());
    }
}
