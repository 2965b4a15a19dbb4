//! The loader's public API: YAML text or file in, a validated [`GatewayConfig`] (plus warnings)
//! or every problem found out.
//!
//! Pipeline: parse the YAML (serde-saphyr, with a budget against alias bombs; plain scalars typed
//! as PyYAML types them) into an untyped tree, then walk it: top-level keys, endpoint entries
//! (`endpoints:` and legacy `routes:` entries with a `model`), duplicate names, traffic routes.
//! Errors are reported in MLflow's stage order (names, traffic routes, then the endpoints' field
//! checks) so the first one is the one MLflow would have raised in most cases.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::endpoints::{check_endpoint, EntryKind, RawEntry};
use super::fields::{index, join, Obj, Report, FIELD_REQUIRED, NOT_A_LIST};
use super::model::GatewayConfig;
use super::providers::Provider;
use super::routes::{check_duplicate_names, check_route, raw_route_name};
use super::yaml::build_tree;

/// MLflow's provider allow-list variable.
pub const ALLOWED_PROVIDERS_ENV: &str = "MLFLOW_GATEWAY_ALLOWED_PROVIDERS";

/// A config file this large is not an endpoint list; refuse it before parsing.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// How to load: where environment variables come from, whether to resolve keys, which
/// providers are allowed.
pub struct LoadOptions<'a> {
    /// Environment lookup, used for `$VAR` keys. Injected so tests never touch the process
    /// environment.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Resolve `$VAR` and key-file values (the running server). When false, key fields are taken
    /// literally, as MLflow's pre-start CLI validation does.
    pub resolve_keys: bool,
    /// `None` allows every provider; `Some(list)` only those (aliases fold: `bedrock` allows
    /// `amazon-bedrock`). `Some(vec![])` allows none.
    pub allowed_providers: Option<Vec<Provider>>,
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl LoadOptions<'_> {
    /// The running server's options: the process environment, keys resolved, and the allow-list
    /// from `MLFLOW_GATEWAY_ALLOWED_PROVIDERS`.
    pub fn from_process() -> LoadOptions<'static> {
        LoadOptions {
            env: &process_env,
            resolve_keys: true,
            allowed_providers: parse_allowed_providers(process_env(ALLOWED_PROVIDERS_ENV)),
        }
    }
}

/// Parses the comma-separated allow-list. Unset, empty or only commas means "all allowed", as in
/// MLflow; names that match no provider allow nothing (so `foo` alone blocks every provider).
pub fn parse_allowed_providers(value: Option<String>) -> Option<Vec<Provider>> {
    let value = value?;
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(names.into_iter().filter_map(Provider::parse).collect())
}

/// A validated config and the non-fatal issues found on the way (unknown keys, deprecated keys).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: GatewayConfig,
    pub warnings: Vec<ConfigIssue>,
}

/// One problem, located by its YAML path (`endpoints[2].model.config.openai_api_key`); the path
/// is empty for whole-file problems. Messages never contain a key's value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every error found in a file (never empty when returned by the loader).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    fn single(message: impl Into<String>) -> Self {
        Self(vec![ConfigIssue {
            path: String::new(),
            message: message.into(),
        }])
    }
}

/// Loads a config from YAML text.
pub fn load_str(text: &str, opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    load_text(text, None, opts)
}

/// The untyped tree the loader walks, before any endpoint check: what PyYAML's `safe_load` gives
/// MLflow for the same text (see `fuzz/pyyaml_differential.py`).
pub fn yaml_tree(text: &str) -> Result<Value, ConfigErrors> {
    parse_yaml(text, None)
}

/// Loads a config file. Read failures are reported as one issue naming the file.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigErrors::single(format!("{shown} does not exist")));
        }
        Ok(m) if m.len() > MAX_CONFIG_BYTES => {
            return Err(ConfigErrors::single(format!(
                "{shown} is larger than {MAX_CONFIG_BYTES} bytes"
            )));
        }
        _ => {}
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single(format!("cannot read {shown}: {e}")))?;
    load_text(&text, Some(path), opts)
}

fn load_text(
    text: &str,
    source: Option<&Path>,
    opts: &LoadOptions,
) -> Result<Loaded, ConfigErrors> {
    let root = parse_yaml(text, source)?;
    let mut rep = Report::default();
    let config = check_document(&mut rep, opts, &root);
    match config {
        Some(config) if rep.errors.is_empty() => Ok(Loaded {
            config,
            warnings: rep.warnings,
        }),
        _ if rep.errors.is_empty() => Err(ConfigErrors::single(
            "the configuration is invalid (no detail available)",
        )),
        _ => Err(ConfigErrors(rep.errors)),
    }
}

/// Parses YAML into an untyped tree. Budgets are far above any real endpoint file and far below
/// what an alias bomb needs. serde-saphyr checks the text (syntax, budgets, positions); the tree
/// is then built with MLflow's (PyYAML's) typing of plain scalars.
fn parse_yaml(text: &str, source: Option<&Path>) -> Result<Value, ConfigErrors> {
    let what = match source {
        Some(path) => format!("The file at {} is not a valid yaml file", path.display()),
        None => "The configuration is not a valid yaml file".to_owned(),
    };
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigErrors::single(format!(
            "{what}: larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 500_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_nodes: 250_000,
            max_depth: 64,
        },
        alias_limits: alias_limits(),
        // PyYAML keeps the last of two equal keys; so do we, to accept the same files.
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::LastWins,
        // Whether `12e45678` is a number at all is PyYAML's call (it is not), made below.
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::AsString,
        with_snippet: false,
    };
    // This tree is dropped, but building it keeps serde-saphyr's refusals (a key that is not text,
    // a value its tag does not fit) and their positions ahead of build_tree's, as before.
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let detail = e.to_string();
        // serde-saphyr usually puts the position in its message already; add it when not.
        let location = match e.location() {
            Some(l) if !detail.contains(&format!("line {}", l.line())) => {
                format!(" (line {}, column {})", l.line(), l.column())
            }
            _ => String::new(),
        };
        ConfigErrors::single(format!("{what}: {detail}{location}"))
    })?;
    build_tree(text).map_err(|detail| ConfigErrors::single(format!("{what}: {detail}")))
}

fn alias_limits() -> serde_saphyr::options::AliasLimits {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = 100_000;
    limits
}

/// Walks the whole document. Returns the config only if every part was valid.
fn check_document(rep: &mut Report, opts: &LoadOptions, root: &Value) -> Option<GatewayConfig> {
    let o = match root {
        Value::Object(_) => Obj::new(rep, root, String::new())?,
        Value::Null => {
            rep.error(
                "",
                "the configuration is empty: expected a mapping with an `endpoints` list",
            );
            return None;
        }
        _ => {
            rep.error(
                "",
                "the configuration must be a mapping with an `endpoints` list",
            );
            return None;
        }
    };
    o.warn_unknown(rep, &["endpoints", "routes"]);
    let endpoint_items = list(rep, &o, "endpoints");
    let route_items = list(rep, &o, "routes");

    // Stage reports, merged below in MLflow's order.
    let mut entries_rep = Report::default();
    let mut names_rep = Report::default();
    let mut routes_rep = Report::default();

    let mut raw_endpoints: Vec<RawEntry> = Vec::new();
    let mut endpoints = Vec::new();
    let mut all_valid = endpoint_items.is_ok() && route_items.is_ok();
    for (i, item) in endpoint_items.unwrap_or_default().iter().enumerate() {
        let path = index("endpoints", i);
        let (raw, endpoint) =
            check_endpoint(&mut entries_rep, opts, item, &path, EntryKind::Endpoint);
        raw_endpoints.push(raw);
        match endpoint {
            Some(e) => endpoints.push(Arc::new(e)),
            None => all_valid = false,
        }
    }
    let mut route_values = Vec::new();
    let mut route_names = Vec::new();
    for (i, item) in route_items.unwrap_or_default().iter().enumerate() {
        let path = index("routes", i);
        if is_legacy_endpoint(item) {
            let (raw, endpoint) =
                check_endpoint(&mut entries_rep, opts, item, &path, EntryKind::LegacyRoute);
            raw_endpoints.push(raw);
            match endpoint {
                Some(e) => endpoints.push(Arc::new(e)),
                None => all_valid = false,
            }
        } else {
            route_names.push((raw_route_name(item), join(&path, "name")));
            route_values.push((path, item));
        }
    }
    let has_endpoints_key = o.get("endpoints").is_some();
    if !has_endpoints_key && raw_endpoints.is_empty() {
        // MLflow requires `endpoints` (an empty list is fine); a legacy file with endpoint
        // entries under `routes:` needs none.
        rep.error("endpoints", FIELD_REQUIRED);
        all_valid = false;
    }

    check_duplicate_names(&mut names_rep, &raw_endpoints, &route_names);
    let mut routes = Vec::new();
    for (path, item) in route_values {
        let known = endpoint_items.is_ok().then_some(raw_endpoints.as_slice());
        match check_route(&mut routes_rep, item, &path, known) {
            Some(r) => routes.push(Arc::new(r)),
            None => all_valid = false,
        }
    }

    for stage in [names_rep, routes_rep, entries_rep] {
        rep.errors.extend(stage.errors);
        rep.warnings.extend(stage.warnings);
    }
    (all_valid && rep.errors.is_empty()).then_some(GatewayConfig { endpoints, routes })
}

/// A top-level list; absent or null is empty. `Err(())` once reported.
fn list<'v>(rep: &mut Report, o: &Obj<'v>, key: &str) -> Result<&'v [Value], ()> {
    match o.get(key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => {
            rep.error(&o.at(key), NOT_A_LIST);
            Err(())
        }
    }
}

/// The legacy format (MLflow 3 rejects it; we read it): a `routes:` entry with a `model` (or,
/// lacking one, a `route_type` / `type` and no `destinations`) is an MLflow 2.x endpoint, not a
/// traffic route.
fn is_legacy_endpoint(item: &Value) -> bool {
    let Value::Object(map) = item else {
        return false;
    };
    map.contains_key("model")
        || (!map.contains_key("destinations")
            && !map.contains_key("task_type")
            && (map.contains_key("route_type") || map.contains_key("type")))
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
