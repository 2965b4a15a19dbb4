//! Whole-document tests: YAML parsing, top-level keys, legacy format, names, traffic routes,
//! the provider policy, warnings and error collection.

use super::*;
use crate::config::model::{EndpointType, Granularity};
use crate::config::test_support::*;
use serde_json::json;

const DUPLICATE: &str = "Duplicate names found in endpoint / route configurations. Please remove the duplicate endpoint / route name from the configuration to ensure that endpoints / routes are created properly.";

#[test]
fn good_sample_loads_with_defaults_applied() {
    let loaded = load(&good()).expect("good sample loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(config.endpoints.len(), 3);
    let chat = config.endpoint("chat").expect("chat");
    assert_eq!(chat.endpoint_type, EndpointType::Chat);
    assert_eq!(chat.model.provider, Provider::OpenAi);
    let limit = chat.limit.as_ref().expect("limit");
    assert_eq!(
        (limit.calls, limit.window.granularity),
        (10, Granularity::Minute)
    );
    match &chat.model.config {
        crate::config::ProviderConfig::OpenAi(c) => {
            assert_eq!(c.api_key.expose(), "test-key");
            assert_eq!(c.api_base, "https://api.openai.com/v1");
        }
        other => panic!("unexpected config {other:?}"),
    }
    let route = config.route("chat-split").expect("route");
    assert_eq!(route.task_type, EndpointType::Chat);
    assert_eq!(route.routing_strategy, "TRAFFIC_SPLIT");
    assert_eq!(route.destinations[1].name, "chat-2");
    assert_eq!(route.destinations[1].traffic_percentage, 20);
}

#[test]
fn yaml_text_loads() {
    let text = "
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: mock
";
    let loaded = load_str(text, &opts()).expect("loads");
    assert_eq!(loaded.config.endpoints[0].model.provider, Provider::Mock);
}

#[test]
fn empty_file_is_a_clear_error() {
    for text in ["", "   \n", "# only a comment\n"] {
        let err = load_str(text, &opts()).expect_err("empty");
        assert_eq!(
            err.to_string(),
            "the configuration is empty: expected a mapping with an `endpoints` list"
        );
    }
}

#[test]
fn non_mapping_document_is_rejected() {
    let err = load_str("- a\n- b\n", &opts()).expect_err("list");
    assert_eq!(
        err.to_string(),
        "the configuration must be a mapping with an `endpoints` list"
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = load_str("endpoints:\n  - name: x\n   bad: 1\n", &opts()).expect_err("syntax");
    let text = err.to_string();
    assert!(
        text.starts_with("The configuration is not a valid yaml file: "),
        "{text}"
    );
    assert!(text.contains("line 3, column 4"), "{text}");
}

#[test]
fn file_syntax_error_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "endpoints: [\n").expect("write");
    let err = load_file(&path, &opts()).expect_err("syntax");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "The file at {} is not a valid yaml file: ",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn missing_file_is_named() {
    let err = load_file(Path::new("/nonexistent/gateway.yaml"), &opts()).expect_err("missing");
    assert_eq!(err.to_string(), "/nonexistent/gateway.yaml does not exist");
}

#[test]
fn file_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ok.yaml");
    std::fs::write(&path, good().to_string()).expect("write");
    let loaded = load_file(&path, &opts()).expect("loads");
    assert_eq!(loaded.config.endpoints.len(), 3);
}

#[test]
fn alias_bomb_is_refused() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for name in ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] {
        text.push_str(&format!(
            "{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = name;
    }
    text.push_str("endpoints: []\n");
    let err = load_str(&text, &opts()).expect_err("bomb");
    assert!(
        err.to_string()
            .starts_with("The configuration is not a valid yaml file"),
        "{err}"
    );
}

#[test]
fn multiple_documents_are_rejected() {
    let err = load_str("endpoints: []\n---\nendpoints: []\n", &opts()).expect_err("two docs");
    assert!(err.to_string().contains("not a valid yaml file"), "{err}");
}

#[test]
fn duplicate_yaml_keys_keep_the_last_like_pyyaml() {
    let text = "endpoints: [{name: a, endpoint_type: llm/v1/chat, model: {provider: mock}}]\nendpoints: []\n";
    let loaded = load_str(text, &opts()).expect("loads");
    assert!(loaded.config.endpoints.is_empty());
}

/// Unquoted values PyYAML (MLflow's loader) reads as strings load as strings here too, though YAML
/// 1.2 would make them booleans or numbers; `12e45678` would even be a float out of range.
#[test]
fn unquoted_values_are_typed_as_mlflow_types_them() {
    let text = "endpoints:
  - name: y
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: 1e3, config: {openai_api_key: 12e45678}}
  - name: n
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: 0o17, config: {openai_api_key: k}}
    limit: {calls: 0x0A, renewal_period: minute}
";
    let config = load_str(text, &opts()).expect("loads").config;
    let y = config.endpoint("y").expect("endpoint y");
    assert_eq!(y.model.name.as_deref(), Some("1e3"));
    match &y.model.config {
        crate::config::ProviderConfig::OpenAi(c) => assert_eq!(c.api_key.expose(), "12e45678"),
        other => panic!("unexpected config {other:?}"),
    }
    let n = config.endpoint("n").expect("endpoint n");
    assert_eq!(n.model.name.as_deref(), Some("0o17"));
    assert_eq!(n.limit.as_ref().map(|l| l.calls), Some(10));
}

#[test]
fn non_finite_floats_make_the_file_invalid_with_their_position() {
    let err = load_str("endpoints:\n  - name: .inf\n", &opts()).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "The configuration is not a valid yaml file: non-finite float `.inf` is not supported at line 2, column 11"
    );
}

#[test]
fn endpoints_key_is_required() {
    assert_error(&json!({"routes": null}), "endpoints", "Field required");
    assert_error(&json!({}), "endpoints", "Field required");
}

#[test]
fn empty_endpoints_list_is_valid() {
    let loaded = load(&json!({"endpoints": []})).expect("loads");
    assert!(loaded.config.endpoints.is_empty());
    assert!(loaded.config.routes.is_empty());
}

#[test]
fn endpoints_and_routes_must_be_lists() {
    assert_error(
        &with("/endpoints", json!({"a": 1})),
        "endpoints",
        "Input should be a valid list",
    );
    assert_error(
        &with("/routes", json!("x")),
        "routes",
        "Input should be a valid list",
    );
}

#[test]
fn null_routes_is_no_routes() {
    let loaded = load(&with("/routes", Value::Null)).expect("loads");
    assert!(loaded.config.routes.is_empty());
}

/// The MLflow 2.x example from the seed documents (indentation repaired), which MLflow 3 rejects.
#[test]
fn legacy_routes_from_seed_docs_load_as_endpoints() {
    let text = "
routes:
  - name: my_completions_route
    route_type: llm/v1/completions
    model:
      provider: openai
      name: gpt-3.5-turbo
      config:
        openai_api_key: $OPENAI_API_KEY

  - name: my_chat_route_gpt_4
    route_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4
      config:
        openai_api_key: $OPENAI_API_KEY

  - name: my_chat_route_gpt_3.5_turbo
    route_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-3.5-turbo
      config:
        openai_api_key: $OPENAI_API_KEY

  - name: my_embeddings_route
    route_type: llm/v1/embeddings
    model:
      provider: openai
      name: text-embedding-ada-002
      config:
        openai_api_key: $OPENAI_API_KEY
";
    let loaded = load_str(text, &opts()).expect("legacy loads");
    let names: Vec<_> = loaded
        .config
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.endpoint_type))
        .collect();
    assert_eq!(
        names,
        [
            ("my_completions_route", EndpointType::Completions),
            ("my_chat_route_gpt_4", EndpointType::Chat),
            ("my_chat_route_gpt_3.5_turbo", EndpointType::Chat),
            ("my_embeddings_route", EndpointType::Embeddings),
        ]
    );
    assert!(loaded.config.routes.is_empty());
    assert_eq!(loaded.warnings.len(), 4);
    assert!(loaded.warnings[0].path == "routes[0]");
}

#[test]
fn legacy_route_type_key_variants() {
    for key in ["route_type", "type", "endpoint_type"] {
        let doc = json!({"routes": [
            {"name": "a", key: "llm/v1/chat", "model": {"provider": "mock"}}
        ]});
        let loaded = load(&doc).expect("loads");
        assert_eq!(loaded.config.endpoints[0].endpoint_type, EndpointType::Chat);
    }
}

#[test]
fn legacy_endpoint_errors_carry_routes_paths() {
    let doc = json!({"routes": [
        {"name": "a", "route_type": "llm/v1/chat",
         "model": {"provider": "openai", "config": {"openai_api_key": "$UNSET"}}}
    ]});
    assert_error(
        &doc,
        "routes[0].model.config.openai_api_key",
        "Environment variable 'UNSET' is not set (needed by endpoint 'a')",
    );
}

#[test]
fn legacy_endpoints_and_traffic_routes_mix() {
    let doc = json!({"routes": [
        {"name": "a", "route_type": "llm/v1/chat", "model": {"provider": "mock"}},
        {"name": "b", "route_type": "llm/v1/chat", "model": {"provider": "mock"}},
        {"name": "split", "task_type": "llm/v1/chat", "destinations": [
            {"name": "a", "traffic_percentage": 50}, {"name": "b", "traffic_percentage": 50}
        ]}
    ]});
    let loaded = load(&doc).expect("loads");
    assert_eq!(loaded.config.endpoints.len(), 2);
    assert_eq!(loaded.config.routes.len(), 1);
}

#[test]
fn route_type_under_endpoints_is_accepted_with_a_warning() {
    let mut doc = without("/endpoints/0/endpoint_type");
    set(&mut doc, "/endpoints/0/route_type", json!("llm/v1/chat"));
    assert_eq!(
        warnings(&doc),
        ["endpoints[0].route_type: deprecated key: use `endpoint_type` (MLflow 3 rejects `route_type`)"]
    );
}

#[test]
fn unknown_keys_warn_at_every_level() {
    let mut doc = good();
    set(&mut doc, "/extra", json!(1));
    set(&mut doc, "/endpoints/0/extra", json!(1));
    set(&mut doc, "/endpoints/0/model/extra", json!(1));
    set(&mut doc, "/endpoints/0/model/config/extra", json!(1));
    set(&mut doc, "/endpoints/0/limit/extra", json!(1));
    set(&mut doc, "/routes/0/extra", json!(1));
    set(&mut doc, "/routes/0/destinations/0/extra", json!(1));
    let got = warnings(&doc);
    let expected: Vec<String> = [
        "extra",
        "endpoints[0].extra",
        "endpoints[0].model.extra",
        "endpoints[0].model.config.extra",
        "endpoints[0].limit.extra",
        "routes[0].extra",
        "routes[0].destinations[0].extra",
    ]
    .iter()
    .map(|p| format!("{p}: unknown key, ignored"))
    .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(got_sorted, expected_sorted);
}

#[test]
fn misspelled_config_warns_and_errors() {
    let mut doc = good();
    let config = doc["endpoints"][0]["model"]["config"].take();
    remove(&mut doc, "/endpoints/0/model/config");
    set(&mut doc, "/endpoints/0/model/confg", config);
    let err = load(&doc).expect_err("config missing");
    assert_eq!(
        err.to_string(),
        "endpoints[0].model.config: A config must be supplied when setting a provider. The provider entry for Provider.OPENAI is incorrect."
    );
}

#[test]
fn all_errors_are_collected() {
    let mut doc = good();
    set(&mut doc, "/endpoints/0/name", json!("bad name"));
    set(&mut doc, "/endpoints/1/model/provider", json!("foo"));
    set(&mut doc, "/endpoints/2/endpoint_type", json!("llm/v1/nope"));
    set(
        &mut doc,
        "/routes/0/destinations/1/traffic_percentage",
        json!(30),
    );
    let got = errors(&doc);
    assert_eq!(
        got,
        [
            "routes[0].destinations[0].name: The route destination name must be a endpoint name, but the route 'chat-split' has an invalid destination name 'chat'.",
            "routes[0].destinations: For each route configuration, the traffic percentage sum of destinations must be 100, but got invalid configuration of route 'chat-split'.",
            "endpoints[0].name: The route name provided contains disallowed characters for a url endpoint. 'bad name' is invalid. Names cannot contain spaces or any non alphanumeric characters other than hyphen and underscore.",
            "endpoints[1].model.provider: The provider 'foo' is not supported.",
            "endpoints[2].endpoint_type: The route_type 'llm/v1/nope' is not supported.",
        ]
    );
}

#[test]
fn errors_never_print_key_values() {
    let mut doc = good();
    set(
        &mut doc,
        "/endpoints/0/model/config/openai_api_key",
        json!("sk-secret\nvalue"),
    );
    set(
        &mut doc,
        "/endpoints/0/model/config/openai_api_type",
        json!("bogus"),
    );
    let text = errors(&doc).join("\n");
    assert!(!text.contains("sk-secret"), "{text}");
}

// ---- names ----

#[test]
fn duplicate_endpoint_names_are_rejected() {
    assert_error(
        &with("/endpoints/2/name", json!("chat")),
        "endpoints[2].name",
        DUPLICATE,
    );
}

#[test]
fn route_name_may_not_repeat_an_endpoint_name() {
    let mut doc = with("/routes/0/name", json!("embeddings"));
    set(&mut doc, "/routes/0/task_type", json!("llm/v1/chat"));
    assert_error(&doc, "routes[0].name", DUPLICATE);
}

#[test]
fn duplicate_route_names_are_rejected() {
    let mut doc = good();
    let route = doc["routes"][0].clone();
    doc["routes"].as_array_mut().expect("list").push(route);
    assert_error(&doc, "routes[1].name", DUPLICATE);
}

// ---- traffic routes (MLflow's order) ----

#[test]
fn destination_must_be_an_endpoint() {
    assert_error(
        &with("/routes/0/destinations/1/name", json!("nope")),
        "routes[0].destinations[1].name",
        "The route destination name must be a endpoint name, but the route 'chat-split' has an invalid destination name 'nope'.",
    );
}

#[test]
fn destination_may_not_be_a_route() {
    let mut doc = good();
    let mut second = doc["routes"][0].clone();
    second["name"] = json!("outer");
    second["destinations"] = json!([{"name": "chat-split", "traffic_percentage": 100}]);
    doc["routes"].as_array_mut().expect("list").push(second);
    assert_error(
        &doc,
        "routes[1].destinations[0].name",
        "The route destination name must be a endpoint name, but the route 'outer' has an invalid destination name 'chat-split'.",
    );
}

#[test]
fn destination_type_must_match_task_type() {
    assert_error(
        &with("/routes/0/destinations/1/name", json!("embeddings")),
        "routes[0].destinations[1].name",
        "The route destination endpoint types in the route 'chat-split' must have endpoint type 'llm/v1/chat' but got endpoint type 'llm/v1/embeddings'.",
    );
}

#[test]
fn percentage_must_be_between_0_and_100() {
    let mut doc = with("/routes/0/destinations/0/traffic_percentage", json!(120));
    set(
        &mut doc,
        "/routes/0/destinations/1/traffic_percentage",
        json!(-20),
    );
    let got = errors(&doc);
    assert_eq!(
        got,
        [
            "routes[0].destinations[0].traffic_percentage: The route destination traffic percentage must between 0 and 100.",
            "routes[0].destinations[1].traffic_percentage: The route destination traffic percentage must between 0 and 100.",
        ]
    );
}

#[test]
fn percentages_must_sum_to_100() {
    assert_error(
        &with("/routes/0/destinations/1/traffic_percentage", json!(10)),
        "routes[0].destinations",
        "For each route configuration, the traffic percentage sum of destinations must be 100, but got invalid configuration of route 'chat-split'.",
    );
}

#[test]
fn empty_destinations_fail_the_sum() {
    assert_error(
        &with("/routes/0/destinations", json!([])),
        "routes[0].destinations",
        "For each route configuration, the traffic percentage sum of destinations must be 100, but got invalid configuration of route 'chat-split'.",
    );
}

#[test]
fn zero_percent_destination_is_allowed() {
    let mut doc = with("/routes/0/destinations/0/traffic_percentage", json!(100));
    set(
        &mut doc,
        "/routes/0/destinations/1/traffic_percentage",
        json!(0),
    );
    let loaded = load(&doc).expect("loads");
    assert_eq!(
        loaded.config.routes[0].destinations[1].traffic_percentage,
        0
    );
}

#[test]
fn fractional_percentage_is_rejected() {
    assert_error(
        &with("/routes/0/destinations/1/traffic_percentage", json!(20.5)),
        "routes[0].destinations[1].traffic_percentage",
        "Input should be a valid integer, got a number with a fractional part",
    );
}

#[test]
fn string_percentage_is_rejected() {
    assert_error(
        &with("/routes/0/destinations/1/traffic_percentage", json!("20")),
        "routes[0].destinations[1].traffic_percentage",
        "Input should be a valid integer",
    );
}

#[test]
fn integral_float_percentage_is_accepted_like_pydantic() {
    let loaded = load(&with(
        "/routes/0/destinations/1/traffic_percentage",
        json!(20.0),
    ))
    .expect("loads");
    assert_eq!(
        loaded.config.routes[0].destinations[1].traffic_percentage,
        20
    );
}

#[test]
fn routing_strategy_only_traffic_split() {
    assert_error(
        &with("/routes/0/routing_strategy", json!("ROUND_ROBIN")),
        "routes[0].routing_strategy",
        "Input should be 'TRAFFIC_SPLIT'",
    );
    let loaded = load(&without("/routes/0/routing_strategy")).expect("default");
    assert_eq!(loaded.config.routes[0].routing_strategy, "TRAFFIC_SPLIT");
}

#[test]
fn route_task_type_must_be_an_endpoint_type() {
    assert_error(
        &with("/routes/0/task_type", json!("llm/v1/foo")),
        "routes[0].task_type",
        "Input should be 'llm/v1/completions', 'llm/v1/chat' or 'llm/v1/embeddings'",
    );
}

#[test]
fn route_required_fields() {
    assert_error(
        &without("/routes/0/name"),
        "routes[0].name",
        "Field required",
    );
    assert_error(
        &without("/routes/0/task_type"),
        "routes[0].task_type",
        "Field required",
    );
    assert_error(
        &without("/routes/0/destinations"),
        "routes[0].destinations",
        "Field required",
    );
    assert_error(
        &without("/routes/0/destinations/0/traffic_percentage"),
        "routes[0].destinations[0].traffic_percentage",
        "Field required",
    );
}

#[test]
fn route_names_are_not_character_checked() {
    let loaded = load(&with("/routes/0/name", json!("split with spaces"))).expect("loads");
    assert_eq!(loaded.config.routes[0].name, "split with spaces");
}

#[test]
fn route_to_invalid_endpoint_does_not_cascade() {
    // The endpoint's own problem is reported; the route still finds it by name and type.
    let doc = with("/endpoints/1/model/provider", json!("foo"));
    assert_error(
        &doc,
        "endpoints[1].model.provider",
        "The provider 'foo' is not supported.",
    );
}

// ---- provider policy ----

#[test]
fn allowed_providers_policy_blocks_others() {
    let opts = LoadOptions {
        env: &test_env,
        resolve_keys: true,
        allowed_providers: Some(vec![Provider::Anthropic, Provider::Mock]),
    };
    let err = load_with(&good(), &opts).expect_err("openai blocked");
    assert_eq!(
        err.to_string(),
        "endpoints[0].model.provider: Provider 'Provider.OPENAI' is not allowed by the current gateway provider policy."
    );
}

#[test]
fn allowed_providers_aliases_fold() {
    let doc = json!({"endpoints": [{"name": "b", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "amazon-bedrock", "config": {"aws_config": {}}}}]});
    let opts = LoadOptions {
        env: &test_env,
        resolve_keys: true,
        allowed_providers: Some(vec![Provider::Bedrock]),
    };
    assert!(load_with(&doc, &opts).is_ok());
}

#[test]
fn allowed_providers_env_parsing() {
    assert_eq!(parse_allowed_providers(None), None);
    assert_eq!(parse_allowed_providers(Some(" , ".into())), None);
    assert_eq!(
        parse_allowed_providers(Some("OpenAI, amazon-bedrock".into())),
        Some(vec![Provider::OpenAi, Provider::AmazonBedrock])
    );
    assert_eq!(parse_allowed_providers(Some("foo".into())), Some(vec![]));
}

#[test]
fn without_key_resolution_unset_variables_pass() {
    let doc = with("/endpoints/0/model/config/openai_api_key", json!("$UNSET"));
    let opts = LoadOptions {
        env: &test_env,
        resolve_keys: false,
        allowed_providers: None,
    };
    assert!(load_with(&doc, &opts).is_ok());
    assert_error(
        &doc,
        "endpoints[0].model.config.openai_api_key",
        "Environment variable 'UNSET' is not set (needed by endpoint 'chat')",
    );
}

#[test]
fn from_process_resolves_keys() {
    let opts = LoadOptions::from_process();
    assert!(opts.resolve_keys);
}

#[test]
fn issue_display_formats() {
    let issue = ConfigIssue {
        path: "endpoints[0].name".into(),
        message: "bad".into(),
    };
    assert_eq!(issue.to_string(), "endpoints[0].name: bad");
    let whole = ConfigIssue {
        path: String::new(),
        message: "empty".into(),
    };
    assert_eq!(whole.to_string(), "empty");
    assert_eq!(
        ConfigErrors(vec![issue, whole]).to_string(),
        "endpoints[0].name: bad\nempty"
    );
}
