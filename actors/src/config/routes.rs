//! Name uniqueness across endpoints and routes, and traffic-split route validation,
//! with MLflow's messages in MLflow's order.

use std::collections::HashSet;

use serde_json::Value;

use super::endpoints::RawEntry;
use super::fields::{index, int_value, join, show, Obj, Report, FIELD_REQUIRED, NOT_A_LIST};
use super::model::{Destination, EndpointType, TrafficRoute};

const DUPLICATE_NAMES: &str = "Duplicate names found in endpoint / route configurations. Please remove the duplicate endpoint / route name from the configuration to ensure that endpoints / routes are created properly.";
const PERCENTAGE_RANGE: &str = "The route destination traffic percentage must between 0 and 100.";
const TASK_TYPE_CHOICES: &str =
    "Input should be 'llm/v1/completions', 'llm/v1/chat' or 'llm/v1/embeddings'";
const ROUTING_STRATEGY: &str = "TRAFFIC_SPLIT";

/// Reports every name that repeats an earlier one, endpoints (in file order) first, then routes.
/// MLflow's message does not say which name; the path (the later occurrence) does.
pub(crate) fn check_duplicate_names(
    rep: &mut Report,
    endpoints: &[RawEntry],
    routes: &[(Option<String>, String)],
) {
    let mut seen = HashSet::new();
    let names = endpoints
        .iter()
        .map(|e| (&e.name, &e.name_path))
        .chain(routes.iter().map(|(name, path)| (name, path)));
    for (name, path) in names {
        if let Some(name) = name {
            if !seen.insert(name.as_str()) {
                rep.error(path, DUPLICATE_NAMES);
            }
        }
    }
}

/// The raw route name, for the duplicate-name check (a non-string name is reported later).
pub(crate) fn raw_route_name(value: &Value) -> Option<String> {
    value.get("name")?.as_str().map(str::to_owned)
}

/// Validates one `routes:` entry that has `destinations` (or no `model`).
pub(crate) fn check_route(
    rep: &mut Report,
    value: &Value,
    path: &str,
    endpoints: Option<&[RawEntry]>,
) -> Option<TrafficRoute> {
    let o = Obj::new(rep, value, path.to_owned())?;
    o.warn_unknown(
        rep,
        &[
            "name",
            "task_type",
            "destinations",
            "routing_strategy",
            "fallback",
        ],
    );
    let name = o.req_str(rep, "name");
    // Route names are not character-checked in MLflow; they are only used as lookup keys.
    let shown_name = name.clone().unwrap_or_else(|| "None".to_owned());
    let task_raw = o.map.get("task_type");
    let task_type = match task_raw {
        None => {
            rep.error(&o.at("task_type"), FIELD_REQUIRED);
            None
        }
        Some(v) => {
            let parsed = v.as_str().and_then(EndpointType::parse);
            if parsed.is_none() {
                rep.error(&o.at("task_type"), TASK_TYPE_CHOICES);
            }
            parsed
        }
    };
    // Comparing against an invalid task type would only repeat the error above per destination.
    let task_raw = task_raw.filter(|_| task_type.is_some());
    let destinations = check_destinations(rep, &o, &shown_name, task_raw, endpoints);
    let routing_strategy = match o.get("routing_strategy") {
        None => Some(ROUTING_STRATEGY.to_owned()),
        Some(Value::String(s)) if s == ROUTING_STRATEGY => Some(s.clone()),
        Some(_) => {
            rep.error(
                &o.at("routing_strategy"),
                format!("Input should be '{ROUTING_STRATEGY}'"),
            );
            None
        }
    };
    let fallback = match o.get("fallback") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            rep.error(&o.at("fallback"), "Input should be a valid boolean");
            false
        }
    };
    Some(TrafficRoute {
        name: name?,
        task_type: task_type?,
        destinations: destinations?,
        routing_strategy: routing_strategy?,
        fallback,
    })
}

fn check_destinations(
    rep: &mut Report,
    o: &Obj<'_>,
    route_name: &str,
    task_raw: Option<&Value>,
    endpoints: Option<&[RawEntry]>,
) -> Option<Vec<Destination>> {
    let path = o.at("destinations");
    let items = match o.map.get("destinations") {
        None => {
            rep.error(&path, FIELD_REQUIRED);
            return None;
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            rep.error(&path, NOT_A_LIST);
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let mut all_valid = true;
    let mut all_readable = true;
    let mut sum: i64 = 0;
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        match check_destination(rep, item, &item_path, route_name, task_raw, endpoints) {
            Some((Some(dest), percentage)) => {
                sum += percentage;
                out.push(dest);
            }
            Some((None, percentage)) => {
                sum += percentage;
                all_valid = false;
            }
            None => {
                all_readable = false;
                all_valid = false;
            }
        }
    }
    // The sum is only meaningful when every percentage could be read; MLflow checks it after
    // the per-destination rules. An empty list fails here too.
    if all_readable && sum != 100 {
        rep.error(
            &path,
            format!(
                "For each route configuration, the traffic percentage sum of destinations must be 100, but got invalid configuration of route '{route_name}'."
            ),
        );
        return None;
    }
    all_valid.then_some(out)
}

/// One destination, rules in MLflow's order. Returns `None` when the percentage is unreadable,
/// else the percentage (for the sum) and the destination if it is entirely valid. `endpoints` is
/// `None` when the endpoint list itself was unreadable: then names cannot be checked.
fn check_destination(
    rep: &mut Report,
    value: &Value,
    path: &str,
    route_name: &str,
    task_raw: Option<&Value>,
    endpoints: Option<&[RawEntry]>,
) -> Option<(Option<Destination>, i64)> {
    let o = Obj::new(rep, value, path.to_owned())?;
    o.warn_unknown(rep, &["name", "traffic_percentage"]);
    let name = o.req_str(rep, "name");
    let mut valid = name.is_some() && endpoints.is_some();
    if let (Some(name), Some(endpoints)) = (&name, endpoints) {
        match endpoints.iter().find(|e| e.name.as_deref() == Some(name)) {
            None => {
                rep.error(
                    &o.at("name"),
                    format!(
                        "The route destination name must be a endpoint name, but the route '{route_name}' has an invalid destination name '{name}'."
                    ),
                );
                valid = false;
            }
            Some(endpoint) => {
                // Raw values are compared, as MLflow does before any parsing.
                let mismatch = task_raw.is_some()
                    && endpoint.endpoint_type.is_some()
                    && endpoint.endpoint_type.as_ref() != task_raw;
                if mismatch {
                    let want = task_raw.map_or_else(|| "None".to_owned(), show);
                    let got = endpoint
                        .endpoint_type
                        .as_ref()
                        .map_or_else(|| "None".to_owned(), show);
                    rep.error(
                        &o.at("name"),
                        format!(
                            "The route destination endpoint types in the route '{route_name}' must have endpoint type '{want}' but got endpoint type '{got}'."
                        ),
                    );
                    valid = false;
                }
            }
        }
    }
    let percentage = match o.map.get("traffic_percentage") {
        None => {
            rep.error(&join(path, "traffic_percentage"), FIELD_REQUIRED);
            return None;
        }
        Some(v) => match int_value(v, false) {
            Ok(p) => p,
            Err(message) => {
                rep.error(&join(path, "traffic_percentage"), message);
                return None;
            }
        },
    };
    if !(0..=100).contains(&percentage) {
        rep.error(&join(path, "traffic_percentage"), PERCENTAGE_RANGE);
        valid = false;
    }
    let dest = match (valid, name) {
        (true, Some(name)) => Some(Destination {
            name,
            // 0..=100 was checked just above.
            traffic_percentage: percentage as u32,
        }),
        _ => None,
    };
    Some((dest, percentage))
}
