//! Validating one endpoint entry: name, type, model (provider, name rules, config
//! block, provider policy) and limit. Also reads legacy MLflow 2.x `routes:` entries that carry a
//! `model` (MLflow 3 rejects that legacy format; we read it).

use serde_json::Value;

use super::blocks::parse_block;
use super::fields::{int_value, join, show, Obj, Report, FIELD_REQUIRED};
use super::keys::KeySource;
use super::limits::{parse_renewal_period, LIMIT_PARSE_ERROR};
use super::load::LoadOptions;
use super::model::{BreakerPolicy, Endpoint, EndpointType, Limit, Model, RetryPolicy, TokenLimit};
use super::providers::Provider;

const MOSAICML_CHAT_PREFIXES: [&str; 1] = ["llama2"];
const AI21LABS_MODELS: [&str; 3] = ["j2-ultra", "j2-mid", "j2-light"];

/// Where an endpoint entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// Under `endpoints:`.
    Endpoint,
    /// Under `routes:` with a `model` (MLflow 2.x format).
    LegacyRoute,
}

/// What the name and traffic-route checks need from an endpoint entry, gathered even when the
/// entry itself is invalid so that one bad endpoint does not cascade into route errors.
#[derive(Debug, Default)]
pub(crate) struct RawEntry {
    pub name: Option<String>,
    pub name_path: String,
    /// The type value as written (MLflow compares raw values); `None` when absent.
    pub endpoint_type: Option<Value>,
}

/// Validates one entry; returns its raw facts and, when everything is valid, the endpoint.
pub(crate) fn check_endpoint(
    rep: &mut Report,
    opts: &LoadOptions<'_>,
    value: &Value,
    path: &str,
    kind: EntryKind,
) -> (RawEntry, Option<Endpoint>) {
    let mut raw = RawEntry {
        name_path: join(path, "name"),
        ..RawEntry::default()
    };
    let Some(o) = Obj::new(rep, value, path.to_owned()) else {
        return (raw, None);
    };
    let type_key = match kind {
        EntryKind::Endpoint => {
            o.warn_unknown(
                rep,
                &[
                    "name",
                    "endpoint_type",
                    "route_type",
                    "model",
                    "limit",
                    "token_limit",
                    "retries",
                    "circuit_breaker",
                ],
            );
            endpoint_type_key(rep, &o)
        }
        EntryKind::LegacyRoute => {
            o.warn_unknown(
                rep,
                &[
                    "name",
                    "route_type",
                    "type",
                    "endpoint_type",
                    "model",
                    "limit",
                    "token_limit",
                    "retries",
                    "circuit_breaker",
                ],
            );
            rep.warn(
                path,
                "legacy MLflow 2.x route entry, read as an endpoint (MLflow 3 rejects this format; \
                 move it under `endpoints:` with `endpoint_type`)",
            );
            ["route_type", "type", "endpoint_type"]
                .into_iter()
                .find(|k| o.has(k))
                .unwrap_or("route_type")
        }
    };

    let name = check_name(rep, &o);
    raw.name = name.clone();
    // Key errors name the endpoint even when its name is itself invalid.
    let written_name = o.get("name").and_then(Value::as_str).map(str::to_owned);
    raw.endpoint_type = o.map.get(type_key).cloned();
    let endpoint_type = check_type(rep, &o, type_key);
    let model = match o.map.get("model") {
        None => {
            rep.error(&o.at("model"), FIELD_REQUIRED);
            None
        }
        Some(value) => check_model(
            rep,
            opts,
            value,
            &o.at("model"),
            &written_name,
            endpoint_type,
        ),
    };
    let limit = match o.get("limit") {
        None => Ok(None),
        Some(value) => check_limit(rep, value, &o.at("limit")).map(Some),
    };
    let token_limit = match o.get("token_limit") {
        None => Ok(None),
        Some(value) => check_token_limit(rep, value, &o.at("token_limit")).map(Some),
    };
    let retries = match o.get("retries") {
        None => Ok(None),
        Some(value) => check_retries(rep, value, &o.at("retries")).map(Some),
    };
    let circuit_breaker = match o.get("circuit_breaker") {
        None => Ok(None),
        Some(value) => check_breaker(rep, value, &o.at("circuit_breaker")).map(Some),
    };
    let endpoint = match (
        name,
        endpoint_type,
        model,
        limit,
        token_limit,
        retries,
        circuit_breaker,
    ) {
        (
            Some(name),
            Some(endpoint_type),
            Some(model),
            Ok(limit),
            Ok(token_limit),
            Ok(retries),
            Ok(circuit_breaker),
        ) => Some(Endpoint {
            name,
            endpoint_type,
            model,
            limit,
            token_limit,
            retries,
            circuit_breaker,
        }),
        _ => None,
    };
    (raw, endpoint)
}

/// `token_limit: {tokens, renewal_period}` (Switchyard extension).
fn check_token_limit(rep: &mut Report, value: &Value, path: &str) -> Result<TokenLimit, ()> {
    let o = Obj::new(rep, value, path.to_owned()).ok_or(())?;
    o.warn_unknown(rep, &["tokens", "renewal_period"]);
    let tokens = match o.opt_int(rep, "tokens", 1, i64::MAX) {
        Ok(Some(tokens)) => Some(tokens as u64),
        Ok(None) => {
            rep.error(&o.at("tokens"), FIELD_REQUIRED);
            None
        }
        Err(()) => None,
    };
    let renewal_period = o.req_str(rep, "renewal_period");
    let window = renewal_period.as_deref().and_then(|text| {
        let parsed = parse_renewal_period(text).map(|p| p.window);
        if parsed.is_none() {
            rep.error(&o.at("renewal_period"), LIMIT_PARSE_ERROR);
        }
        parsed
    });
    match (tokens, renewal_period, window) {
        (Some(tokens), Some(renewal_period), Some(window)) => Ok(TokenLimit {
            tokens,
            renewal_period,
            window,
        }),
        _ => Err(()),
    }
}

/// Upper bound on attempts: a failing provider must not see more than this many calls per request.
pub(crate) const MAX_ATTEMPTS: i64 = 5;

/// `retries: {attempts, backoff_ms, max_backoff_ms}` (Switchyard extension).
fn check_retries(rep: &mut Report, value: &Value, path: &str) -> Result<RetryPolicy, ()> {
    let o = Obj::new(rep, value, path.to_owned()).ok_or(())?;
    o.warn_unknown(rep, &["attempts", "backoff_ms", "max_backoff_ms"]);
    let attempts = o.opt_int(rep, "attempts", 1, MAX_ATTEMPTS);
    let backoff = o.opt_int(rep, "backoff_ms", 0, 60_000);
    let max_backoff = o.opt_int(rep, "max_backoff_ms", 0, 600_000);
    Ok(RetryPolicy {
        attempts: attempts?.unwrap_or(3) as u32,
        backoff_ms: backoff?.unwrap_or(100) as u64,
        max_backoff_ms: max_backoff?.unwrap_or(2_000) as u64,
    })
}

/// `circuit_breaker: {failure_threshold, open_secs}` (Switchyard extension).
fn check_breaker(rep: &mut Report, value: &Value, path: &str) -> Result<BreakerPolicy, ()> {
    let o = Obj::new(rep, value, path.to_owned()).ok_or(())?;
    o.warn_unknown(rep, &["failure_threshold", "open_secs", "open_ms"]);
    let threshold = o.opt_int(rep, "failure_threshold", 1, 1_000);
    let open_secs = o.opt_int(rep, "open_secs", 0, 86_400);
    let open_ms = o.opt_int(rep, "open_ms", 1, 86_400_000);
    let open_ms = match (open_secs?, open_ms?) {
        (_, Some(ms)) => ms as u64,
        (Some(secs), None) => secs as u64 * 1000,
        (None, None) => 30_000,
    };
    Ok(BreakerPolicy {
        failure_threshold: threshold?.unwrap_or(5) as u32,
        open_ms,
    })
}

/// `endpoint_type`, or MLflow 2.x's `route_type` with a deprecation warning.
fn endpoint_type_key(rep: &mut Report, o: &Obj<'_>) -> &'static str {
    if !o.has("route_type") {
        return "endpoint_type";
    }
    if o.has("endpoint_type") {
        rep.warn(
            &o.at("route_type"),
            "deprecated key ignored: `endpoint_type` is also set and takes precedence",
        );
        "endpoint_type"
    } else {
        rep.warn(
            &o.at("route_type"),
            "deprecated key: use `endpoint_type` (MLflow 3 rejects `route_type`)",
        );
        "route_type"
    }
}

fn check_name(rep: &mut Report, o: &Obj<'_>) -> Option<String> {
    let name = o.req_str(rep, "name")?;
    // MLflow's `[a-zA-Z0-9_\-\.]+`: dots are allowed even though its message says otherwise.
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Some(name)
    } else {
        rep.error(
            &o.at("name"),
            format!(
                "The route name provided contains disallowed characters for a url endpoint. '{name}' is invalid. Names cannot contain spaces or any non alphanumeric characters other than hyphen and underscore."
            ),
        );
        None
    }
}

fn check_type(rep: &mut Report, o: &Obj<'_>, key: &str) -> Option<EndpointType> {
    let Some(value) = o.map.get(key) else {
        // A missing type is reported under the modern key name whatever the entry used.
        let field = if key == "route_type" {
            "endpoint_type"
        } else {
            key
        };
        rep.error(&o.at(field), FIELD_REQUIRED);
        return None;
    };
    let parsed = value.as_str().and_then(EndpointType::parse);
    if parsed.is_none() {
        rep.error(
            &o.at(key),
            format!("The route_type '{}' is not supported.", show(value)),
        );
    }
    parsed
}

fn check_model(
    rep: &mut Report,
    opts: &LoadOptions<'_>,
    value: &Value,
    path: &str,
    endpoint_name: &Option<String>,
    endpoint_type: Option<EndpointType>,
) -> Option<Model> {
    let o = Obj::new(rep, value, path.to_owned())?;
    o.warn_unknown(rep, &["name", "provider", "config"]);
    let name = o.opt_str(rep, "name");
    let provider = check_provider(rep, opts, &o);
    let config = provider.and_then(|provider| {
        let block = o.get("config");
        if block.is_none() && provider.config_required() {
            rep.error(
                &o.at("config"),
                format!(
                    "A config must be supplied when setting a provider. The provider entry for {} is incorrect.",
                    provider.enum_repr()
                ),
            );
            return None;
        }
        let keys = KeySource {
            env: opts.env,
            resolve: opts.resolve_keys,
            endpoint: endpoint_name.as_deref(),
        };
        parse_block(rep, &keys, provider, block, &o.at("config"))
    });
    let name = name.ok()?;
    let provider = provider?;
    if !model_name_allowed(rep, &o, provider, endpoint_type, name.as_deref()) {
        return None;
    }
    Some(Model {
        name,
        provider,
        config: config?,
    })
}

fn check_provider(rep: &mut Report, opts: &LoadOptions<'_>, o: &Obj<'_>) -> Option<Provider> {
    let raw = o.req_str(rep, "provider")?;
    let Some(provider) = Provider::parse(&raw) else {
        rep.error(
            &o.at("provider"),
            format!("The provider '{raw}' is not supported."),
        );
        return None;
    };
    if let Some(allowed) = &opts.allowed_providers {
        // Aliases share one policy entry (`amazon-bedrock` is allowed by `bedrock`).
        if !allowed
            .iter()
            .any(|p| p.policy_name() == provider.policy_name())
        {
            rep.error(
                &o.at("provider"),
                format!(
                    "Provider '{}' is not allowed by the current gateway provider policy.",
                    provider.enum_repr()
                ),
            );
            return None;
        }
    }
    Some(provider)
}

/// MLflow's only model-name rules: mosaicml chat needs a `llama2…` model, ai21labs one of three.
fn model_name_allowed(
    rep: &mut Report,
    o: &Obj<'_>,
    provider: Provider,
    endpoint_type: Option<EndpointType>,
    name: Option<&str>,
) -> bool {
    let shown = name.unwrap_or("None");
    if provider == Provider::MosaicMl && endpoint_type == Some(EndpointType::Chat) {
        let lower = name.map(str::to_lowercase).unwrap_or_default();
        if name.is_none() || !MOSAICML_CHAT_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            rep.error(
                &o.at("name"),
                format!(
                    "An invalid model has been specified for the chat route. '{shown}'. Ensure the model selected starts with one of: ['llama2']"
                ),
            );
            return false;
        }
    }
    if provider == Provider::Ai21Labs && !name.is_some_and(|n| AI21LABS_MODELS.contains(&n)) {
        rep.error(
            &o.at("name"),
            format!(
                "An Unsupported AI21Labs model has been specified: '{shown}'. Please see documentation for supported models."
            ),
        );
        return false;
    }
    true
}

/// `limit:`: `calls` (int ≥ 0) per `renewal_period` (the `limits` grammar), plus the
/// informational `key`. `Err(())` once reported.
fn check_limit(rep: &mut Report, value: &Value, path: &str) -> Result<Limit, ()> {
    let o = Obj::new(rep, value, path.to_owned()).ok_or(())?;
    o.warn_unknown(rep, &["calls", "renewal_period", "key"]);
    let calls = match o.map.get("calls") {
        None => {
            rep.error(&o.at("calls"), FIELD_REQUIRED);
            None
        }
        Some(v) => match int_value(v, true) {
            // MLflow builds "-1/minute", which the `limits` grammar rejects.
            Ok(n) if n < 0 => {
                rep.error(&o.at("calls"), LIMIT_PARSE_ERROR);
                None
            }
            Ok(n) => Some(n as u64),
            Err(message) => {
                rep.error(&o.at("calls"), message);
                None
            }
        },
    };
    let renewal_period = o.req_str(rep, "renewal_period");
    let key = o.opt_str(rep, "key");
    let window = renewal_period.as_deref().and_then(|text| {
        let parsed = parse_renewal_period(text);
        match parsed {
            None => rep.error(&o.at("renewal_period"), LIMIT_PARSE_ERROR),
            Some(p) if p.ignored_extra_limits => rep.warn(
                &o.at("renewal_period"),
                "only the first rate limit is used; the ones after the separator are ignored",
            ),
            Some(_) => {}
        }
        parsed.map(|p| p.window)
    });
    match (calls, renewal_period, key, window) {
        (Some(calls), Some(renewal_period), Ok(key), Some(window)) => Ok(Limit {
            calls,
            renewal_period,
            key,
            window,
        }),
        _ => Err(()),
    }
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
