//! JSON plumbing every provider translation shares: the unified request as a JSON object to
//! rewrite, request and response bodies as bytes, the 502 for an upstream body we cannot read, and
//! the clock for `created` when a provider's answer carries no timestamp.
//!
//! One copy here so that every provider words these errors the same way and a change to one rule
//! (say, how a clock before 1970 is treated) reaches all of them.

use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, GatewayError};

/// The request (or any part of it) as a JSON object, ready for a provider's renames and inserts.
/// Our schema types always serialise to objects; anything else is a bug of ours, hence a 500.
pub(crate) fn request_object<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Map<String, Value>, GatewayError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(request_not_serialisable()),
    }
}

/// A request body's bytes.
pub(crate) fn request_body<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value).map_err(|_| request_not_serialisable())
}

/// [`request_body`] into a buffer of `capacity` bytes from the start, for a body whose size is
/// known in advance (a doubling buffer briefly holds the old copy and the new one).
pub(crate) fn request_body_sized<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, GatewayError> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value).map_err(|_| request_not_serialisable())?;
    Ok(body)
}

/// The 500 for a request part that would not serialise (only reachable through a bug of ours).
pub(crate) fn request_not_serialisable() -> GatewayError {
    GatewayError::internal("the request could not be serialised")
}

/// A translated response's bytes, as the client will receive them.
pub(crate) fn response_body<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| GatewayError::internal("a response could not be serialised"))
}

/// The 502 for a 2xx upstream body (or stream event) that is not what the provider documents.
pub(crate) fn unreadable(what: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        502,
        format!("The provider's {what} could not be read."),
    )
}

/// [`unreadable`] with the parser's reason, for callers whose parser gives one worth reading.
pub(crate) fn unreadable_because(what: &str, reason: impl Display) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        502,
        format!("The provider's {what} could not be read: {reason}."),
    )
}

/// Seconds since the epoch; 0 for a clock set before 1970 rather than an error, since it only
/// fills `created` for providers that send no timestamp of their own.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_object_refuses_a_value_that_is_not_an_object() {
        assert_eq!(
            request_object(&json!({"a": 1})).unwrap(),
            json!({"a": 1}).as_object().unwrap().clone()
        );
        let error = request_object(&json!([1, 2])).unwrap_err();
        assert_eq!(error.status, 500);
    }

    #[test]
    fn unreadable_bodies_are_upstream_protocol_502s() {
        let plain = unreadable("chat response");
        assert_eq!(plain.status, 502);
        assert_eq!(plain.kind, ErrorKind::UpstreamProtocol);
        assert_eq!(
            plain.detail,
            json!("The provider's chat response could not be read.")
        );
        let reasoned = unreadable_because("stream event", "expected value at line 1");
        assert_eq!(
            reasoned.detail,
            json!("The provider's stream event could not be read: expected value at line 1.")
        );
    }

    #[test]
    fn the_clock_is_after_2020() {
        assert!(unix_now() > 1_577_836_800);
    }
}
