//! Endpoint-entry rules (MLflow's endpoint object and API-key indirection): each test starts from
//! the good sample and changes one field.

use serde_json::json;

use crate::config::limits::LIMIT_PARSE_ERROR;
use crate::config::model::{EndpointType, Granularity};
use crate::config::providers::{Provider, ProviderConfig};
use crate::config::test_support::*;

const NAME_MESSAGE_TAIL: &str = "is invalid. Names cannot contain spaces or any non alphanumeric characters other than hyphen and underscore.";

#[test]
fn endpoint_name_with_disallowed_characters() {
    for bad in ["bad name", "a/b", "ünïcode", "a?b", ""] {
        assert_error(
            &with("/endpoints/2/name", json!(bad)),
            "endpoints[2].name",
            &format!(
                "The route name provided contains disallowed characters for a url endpoint. '{bad}' {NAME_MESSAGE_TAIL}"
            ),
        );
    }
}

#[test]
fn endpoint_name_may_contain_dots() {
    let mut doc = with("/endpoints/0/name", json!("gpt-3.5_turbo.v1"));
    set(
        &mut doc,
        "/routes/0/destinations/0/name",
        json!("gpt-3.5_turbo.v1"),
    );
    let loaded = load(&doc).expect("dots allowed");
    assert!(loaded.config.endpoint("gpt-3.5_turbo.v1").is_some());
}

#[test]
fn endpoint_name_required_and_string() {
    let mut doc = without("/endpoints/2/name");
    assert_error(&doc, "endpoints[2].name", "Field required");
    doc = with("/endpoints/2/name", json!(12));
    assert_error(&doc, "endpoints[2].name", "Input should be a valid string");
}

#[test]
fn endpoint_type_must_be_one_of_three() {
    assert_error(
        &with("/endpoints/2/endpoint_type", json!("llm/v1/images")),
        "endpoints[2].endpoint_type",
        "The route_type 'llm/v1/images' is not supported.",
    );
}

#[test]
fn endpoint_type_is_case_sensitive() {
    assert_error(
        &with("/endpoints/2/endpoint_type", json!("LLM/v1/embeddings")),
        "endpoints[2].endpoint_type",
        "The route_type 'LLM/v1/embeddings' is not supported.",
    );
}

#[test]
fn endpoint_type_required() {
    assert_error(
        &without("/endpoints/2/endpoint_type"),
        "endpoints[2].endpoint_type",
        "Field required",
    );
}

#[test]
fn every_endpoint_type_parses() {
    for t in EndpointType::ALL {
        let loaded = load(&with("/endpoints/2/endpoint_type", json!(t.as_str()))).expect("loads");
        assert_eq!(loaded.config.endpoints[2].endpoint_type, t);
    }
}

#[test]
fn model_required_and_mapping() {
    assert_error(
        &without("/endpoints/2/model"),
        "endpoints[2].model",
        "Field required",
    );
    assert_error(
        &with("/endpoints/2/model", json!("mock")),
        "endpoints[2].model",
        "Input should be a valid dictionary",
    );
}

#[test]
fn unsupported_provider() {
    assert_error(
        &with("/endpoints/2/model/provider", json!("foo")),
        "endpoints[2].model.provider",
        "The provider 'foo' is not supported.",
    );
}

#[test]
fn provider_required() {
    assert_error(
        &without("/endpoints/2/model/provider"),
        "endpoints[2].model.provider",
        "Field required",
    );
}

#[test]
fn provider_names_match_like_mlflow() {
    let cases = [("OpenAI", Provider::OpenAi), ("OPENAI", Provider::OpenAi)];
    for (written, expected) in cases {
        let loaded = load(&with("/endpoints/0/model/provider", json!(written))).expect("loads");
        assert_eq!(loaded.config.endpoints[0].model.provider, expected);
        assert_eq!(loaded.config.endpoints[0].model.provider.as_str(), "openai");
    }
    let bedrock = json!({"endpoints": [{"name": "b", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "amazon_bedrock", "config": {"aws_config": {}}}}]});
    let loaded = load(&bedrock).expect("loads");
    assert_eq!(
        loaded.config.endpoints[0].model.provider.as_str(),
        "amazon-bedrock"
    );
    let tgi = json!({"endpoints": [{"name": "h", "endpoint_type": "llm/v1/completions",
        "model": {"provider": "HUGGINGFACE-TEXT-GENERATION-INFERENCE",
                  "config": {"hf_server_url": "http://tgi"}}}]});
    let loaded = load(&tgi).expect("loads");
    assert_eq!(
        loaded.config.endpoints[0].model.provider,
        Provider::HuggingFaceTgi
    );
}

#[test]
fn config_required_for_builtin_providers() {
    assert_error(
        &without("/endpoints/0/model/config"),
        "endpoints[0].model.config",
        "A config must be supplied when setting a provider. The provider entry for Provider.OPENAI is incorrect.",
    );
    assert_error(
        &with("/endpoints/0/model/config", json!(null)),
        "endpoints[0].model.config",
        "A config must be supplied when setting a provider. The provider entry for Provider.OPENAI is incorrect.",
    );
}

#[test]
fn config_required_message_uses_enum_repr() {
    let doc = json!({"endpoints": [{"name": "b", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "amazon-bedrock"}}]});
    assert_error(
        &doc,
        "endpoints[0].model.config",
        "A config must be supplied when setting a provider. The provider entry for Provider.AMAZON_BEDROCK is incorrect.",
    );
}

#[test]
fn config_optional_for_mock() {
    let loaded = load(&good()).expect("loads");
    assert!(matches!(
        loaded.config.endpoints[2].model.config,
        ProviderConfig::Mock(_)
    ));
}

#[test]
fn config_must_be_a_mapping() {
    assert_error(
        &with("/endpoints/0/model/config", json!("sk-key")),
        "endpoints[0].model.config",
        "Input should be a valid dictionary",
    );
}

#[test]
fn model_name_optional_but_string() {
    let loaded = load(&without("/endpoints/0/model/name")).expect("loads");
    assert_eq!(loaded.config.endpoints[0].model.name, None);
    assert_error(
        &with("/endpoints/0/model/name", json!(4)),
        "endpoints[0].model.name",
        "Input should be a valid string",
    );
}

fn mosaicml(endpoint_type: &str, name: serde_json::Value) -> serde_json::Value {
    json!({"endpoints": [{"name": "m", "endpoint_type": endpoint_type,
        "model": {"provider": "mosaicml", "name": name,
                  "config": {"mosaicml_api_key": "k"}}}]})
}

#[test]
fn mosaicml_chat_needs_llama2_model() {
    assert!(load(&mosaicml("llm/v1/chat", json!("llama2-70b-chat"))).is_ok());
    assert!(load(&mosaicml("llm/v1/chat", json!("LLaMa2-7b"))).is_ok());
    assert_error(
        &mosaicml("llm/v1/chat", json!("mpt-7b-instruct")),
        "endpoints[0].model.name",
        "An invalid model has been specified for the chat route. 'mpt-7b-instruct'. Ensure the model selected starts with one of: ['llama2']",
    );
}

#[test]
fn mosaicml_rule_only_for_chat() {
    assert!(load(&mosaicml("llm/v1/completions", json!("mpt-7b-instruct"))).is_ok());
}

fn ai21(name: serde_json::Value) -> serde_json::Value {
    json!({"endpoints": [{"name": "a", "endpoint_type": "llm/v1/completions",
        "model": {"provider": "ai21labs", "name": name,
                  "config": {"ai21labs_api_key": "k"}}}]})
}

#[test]
fn ai21labs_model_must_be_known() {
    for ok in ["j2-ultra", "j2-mid", "j2-light"] {
        assert!(load(&ai21(json!(ok))).is_ok(), "{ok}");
    }
    assert_error(
        &ai21(json!("j2-grande")),
        "endpoints[0].model.name",
        "An Unsupported AI21Labs model has been specified: 'j2-grande'. Please see documentation for supported models.",
    );
    assert_error(
        &ai21(json!(null)),
        "endpoints[0].model.name",
        "An Unsupported AI21Labs model has been specified: 'None'. Please see documentation for supported models.",
    );
}

// ---- limit ----

#[test]
fn limit_parsed() {
    let loaded = load(&with(
        "/endpoints/0/limit/renewal_period",
        json!("10 minutes"),
    ))
    .expect("loads");
    let limit = loaded.config.endpoints[0].limit.clone().expect("limit");
    assert_eq!(limit.renewal_period, "10 minutes");
    assert_eq!(limit.window.multiples, 10);
    assert_eq!(limit.window.granularity, Granularity::Minute);
    assert_eq!(limit.key, None);
}

#[test]
fn limit_is_optional() {
    let loaded = load(&with("/endpoints/0/limit", json!(null))).expect("loads");
    assert_eq!(loaded.config.endpoints[0].limit, None);
}

#[test]
fn limit_calls_required() {
    assert_error(
        &without("/endpoints/0/limit/calls"),
        "endpoints[0].limit.calls",
        "Field required",
    );
}

#[test]
fn limit_renewal_period_required() {
    assert_error(
        &without("/endpoints/0/limit/renewal_period"),
        "endpoints[0].limit.renewal_period",
        "Field required",
    );
}

#[test]
fn limit_negative_calls() {
    assert_error(
        &with("/endpoints/0/limit/calls", json!(-1)),
        "endpoints[0].limit.calls",
        LIMIT_PARSE_ERROR,
    );
}

#[test]
fn limit_zero_calls_accepted() {
    let loaded = load(&with("/endpoints/0/limit/calls", json!(0))).expect("loads");
    assert_eq!(
        loaded.config.endpoints[0].limit.as_ref().map(|l| l.calls),
        Some(0)
    );
}

#[test]
fn limit_calls_must_be_an_integer() {
    assert_error(
        &with("/endpoints/0/limit/calls", json!("ten")),
        "endpoints[0].limit.calls",
        "Input should be a valid integer, unable to parse string as an integer",
    );
}

#[test]
fn limit_bad_granularity() {
    for bad in ["week", "sec", "fortnight"] {
        assert_error(
            &with("/endpoints/0/limit/renewal_period", json!(bad)),
            "endpoints[0].limit.renewal_period",
            LIMIT_PARSE_ERROR,
        );
    }
}

#[test]
fn limit_key_is_informational() {
    let loaded = load(&with("/endpoints/0/limit/key", json!("user"))).expect("loads");
    assert_eq!(
        loaded.config.endpoints[0]
            .limit
            .as_ref()
            .and_then(|l| l.key.clone()),
        Some("user".to_owned())
    );
}

#[test]
fn limit_extra_expressions_warn() {
    let doc = with(
        "/endpoints/0/limit/renewal_period",
        json!("minute; 5/second"),
    );
    assert_eq!(
        warnings(&doc),
        ["endpoints[0].limit.renewal_period: only the first rate limit is used; the ones after the separator are ignored"]
    );
}

#[test]
fn limit_must_be_a_mapping() {
    assert_error(
        &with("/endpoints/0/limit", json!("10/minute")),
        "endpoints[0].limit",
        "Input should be a valid dictionary",
    );
}

// ---- API keys (§1.4) through the whole loader ----

fn key_config(value: serde_json::Value) -> serde_json::Value {
    with("/endpoints/0/model/config/openai_api_key", value)
}

fn openai_key(doc: &serde_json::Value) -> String {
    let loaded = load(doc).expect("loads");
    match &loaded.config.endpoints[0].model.config {
        ProviderConfig::OpenAi(c) => c.api_key.expose().to_owned(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn key_from_set_env_var() {
    assert_eq!(
        openai_key(&key_config(json!("$OPENAI_API_KEY"))),
        "test-key"
    );
}

#[test]
fn key_from_unset_env_var_names_variable_and_endpoint() {
    assert_error(
        &key_config(json!("$UNSET")),
        "endpoints[0].model.config.openai_api_key",
        "Environment variable 'UNSET' is not set (needed by endpoint 'chat')",
    );
}

#[test]
fn key_from_empty_env_var_is_unset() {
    assert_error(
        &key_config(json!("$EMPTY")),
        "endpoints[0].model.config.openai_api_key",
        "Environment variable 'EMPTY' is not set (needed by endpoint 'chat')",
    );
}

#[test]
fn key_from_file_is_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("openai.key");
    std::fs::write(&path, "sk-from-file\n").expect("write");
    assert_eq!(
        openai_key(&key_config(json!(path.to_string_lossy()))),
        "sk-from-file"
    );
}

#[test]
fn literal_key() {
    assert_eq!(openai_key(&key_config(json!("sk-literal"))), "sk-literal");
}

#[test]
fn key_not_a_string() {
    assert_error(
        &key_config(json!(12345)),
        "endpoints[0].model.config.openai_api_key",
        "The api key provided is not a string. Please provide either an environment variable key, a path to a file containing the api key, or the api key itself",
    );
}

#[test]
fn key_with_control_character_is_rejected() {
    let got = errors(&key_config(json!("sk-abc\r\nX-Evil: 1")));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("endpoints[0].model.config.openai_api_key: the API key given in the file contains a control character"),
        "{got:?}"
    );
    assert!(!got[0].contains("sk-abc"));
}
