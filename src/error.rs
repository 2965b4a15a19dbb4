//! The one place a [`GatewayError`] becomes an HTTP status and a JSON body, in the shape the
//! caller's API family expects: MLflow's `{"detail": ...}` on MLflow paths, OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` on `/v1`.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};
use switchyard_actors::error::{ErrorKind, GatewayError};

/// Which client convention a path follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// `/endpoints/...`, `/gateway/...`, `/api/...`: MLflow's bodies.
    Mlflow,
    /// `/v1/...`: OpenAI's bodies.
    OpenAi,
}

pub fn error_response(error: &GatewayError, family: ApiFamily) -> HttpResponse {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    if let Some(after) = error.retry_after {
        response.insert_header(("Retry-After", after.as_secs().max(1).to_string()));
    }
    response.json(error_body(error, family))
}

pub fn error_body(error: &GatewayError, family: ApiFamily) -> Value {
    match family {
        ApiFamily::Mlflow if error.kind == ErrorKind::RateLimited => {
            json!({ "error": error.detail })
        }
        ApiFamily::Mlflow => json!({ "detail": error.detail }),
        ApiFamily::OpenAi => openai_error(error),
    }
}

/// OpenAI's error object; also what a stream's final error event carries on every path, since the
/// OpenAI SDK raises on an `error` key inside a stream.
pub fn openai_error(error: &GatewayError) -> Value {
    let param = match error.kind {
        ErrorKind::Validation => first_validation_param(&error.detail),
        ErrorKind::NotFound | ErrorKind::WrongEndpointType => Some("model".to_owned()),
        _ => None,
    };
    json!({
        "error": {
            "message": error.message(),
            "type": openai_error_type(error),
            "param": param,
            "code": error.kind.label(),
        }
    })
}

fn openai_error_type(error: &GatewayError) -> &'static str {
    match error.status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The dotted field path of the first validation problem (`messages.0.role`), for OpenAI's `param`.
fn first_validation_param(detail: &Value) -> Option<String> {
    let loc = detail.as_array()?.first()?.get("loc")?.as_array()?;
    let parts: Vec<String> = loc
        .iter()
        .skip(1) // the leading "body"
        .map(|p| match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

/// MLflow's generic JSON 404 for an unknown path or name.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"detail": "Not Found"}))
}

pub fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(json!({"detail": "Method Not Allowed"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_body_keeps_detail_and_openai_body_flattens_it() {
        let e = GatewayError::new(ErrorKind::UpstreamStatus, 401, "Incorrect API key provided");
        assert_eq!(
            error_body(&e, ApiFamily::Mlflow),
            json!({"detail": "Incorrect API key provided"})
        );
        assert_eq!(
            error_body(&e, ApiFamily::OpenAi),
            json!({"error": {"message": "Incorrect API key provided", "type": "authentication_error", "param": null, "code": "upstream_status"}})
        );
    }

    #[test]
    fn rate_limit_uses_mlflows_error_key() {
        let e = GatewayError::new(
            ErrorKind::RateLimited,
            429,
            "Rate limit exceeded: 1 per 1 minute",
        );
        assert_eq!(
            error_body(&e, ApiFamily::Mlflow),
            json!({"error": "Rate limit exceeded: 1 per 1 minute"})
        );
    }

    #[test]
    fn validation_param_is_the_first_location() {
        let detail = json!([{"type": "missing", "loc": ["body", "messages", 0, "role"], "msg": "Field required"}]);
        let e = GatewayError::new(ErrorKind::Validation, 422, detail);
        let body = error_body(&e, ApiFamily::OpenAi);
        assert_eq!(body["error"]["param"], "messages.0.role");
        assert_eq!(
            body["error"]["message"],
            "body.messages.0.role: Field required"
        );
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
