//! Every provider's `model.config` block: a minimal valid one (defaults applied) and an invalid
//! one, through the whole loader so paths are checked too.

use serde_json::{json, Value};

use crate::config::providers::*;
use crate::config::test_support::*;

const PATH: &str = "endpoints[0].model.config";

fn doc(provider: &str, config: Value) -> Value {
    // Names that satisfy the mosaicml-chat and ai21labs model rules.
    let name = match provider {
        "mosaicml" => "llama2-70b-chat",
        "ai21labs" => "j2-ultra",
        _ => "some-model",
    };
    json!({"endpoints": [{"name": "e", "endpoint_type": "llm/v1/chat",
        "model": {"provider": provider, "name": name, "config": config}}]})
}

fn ok(provider: &str, config: Value) -> ProviderConfig {
    match load(&doc(provider, config)) {
        Ok(loaded) => loaded.config.endpoints[0].model.config.clone(),
        Err(e) => panic!("{provider}: {e}"),
    }
}

#[track_caller]
fn bad(provider: &str, config: Value, field: &str, message: &str) {
    let path = if field.is_empty() {
        PATH.to_owned()
    } else {
        format!("{PATH}.{field}")
    };
    assert_error(&doc(provider, config), &path, message);
}

const REQUIRED: &str = "Field required";

#[test]
fn openai_defaults() {
    let ProviderConfig::OpenAi(c) = ok("openai", json!({"openai_api_key": "k"})) else {
        panic!("variant")
    };
    assert_eq!(c.api_key.expose(), "k");
    assert_eq!(c.api_type, OpenAiApiType::OpenAi);
    assert_eq!(c.api_base, "https://api.openai.com/v1");
    assert_eq!(
        (c.api_version, c.deployment_name, c.organization),
        (None, None, None)
    );
}

#[test]
fn openai_key_required() {
    bad("openai", json!({}), "openai_api_key", REQUIRED);
}

#[test]
fn openai_api_type_is_case_insensitive() {
    let ProviderConfig::OpenAi(c) = ok(
        "openai",
        json!({"openai_api_key": "k", "openai_api_type": "AzureAD", "openai_api_base": "https://x",
               "openai_deployment_name": "d", "openai_api_version": "2024-06-01"}),
    ) else {
        panic!("variant")
    };
    assert_eq!(c.api_type, OpenAiApiType::AzureAd);
    assert_eq!(c.api_base, "https://x");
}

#[test]
fn openai_invalid_api_type() {
    bad(
        "openai",
        json!({"openai_api_key": "k", "openai_api_type": "Bogus"}),
        "openai_api_type",
        "Invalid OpenAI API type 'bogus'",
    );
}

#[test]
fn openai_deployment_name_only_for_azure() {
    bad(
        "openai",
        json!({"openai_api_key": "k", "openai_deployment_name": "d"}),
        "openai_deployment_name",
        "OpenAI route configuration can only specify a value for 'openai_deployment_name' if 'openai_api_type' is 'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'. Found type: 'openai'",
    );
}

#[test]
fn azure_requires_base_deployment_and_version() {
    bad(
        "azure",
        json!({"openai_api_key": "k", "openai_api_type": "azure", "openai_api_base": "https://x"}),
        "",
        "OpenAI route configuration must specify 'openai_api_base', 'openai_deployment_name', and 'openai_api_version' if 'openai_api_type' is 'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'.",
    );
}

#[test]
fn azure_rejects_organization() {
    bad(
        "openai",
        json!({"openai_api_key": "k", "openai_api_type": "azure", "openai_api_base": "https://x",
               "openai_deployment_name": "d", "openai_api_version": "v", "openai_organization": "o"}),
        "openai_organization",
        "OpenAI route configuration can only specify a value for 'openai_organization' if 'openai_api_type' is 'OpenAIAPIType.OPENAI'",
    );
}

#[test]
fn azure_provider_without_type_is_plain_openai() {
    let ProviderConfig::OpenAi(c) = ok("azure", json!({"openai_api_key": "k"})) else {
        panic!("variant")
    };
    assert_eq!(c.api_type, OpenAiApiType::OpenAi);
    assert_eq!(c.api_base, "https://api.openai.com/v1");
}

#[test]
fn anthropic_defaults_and_required_key() {
    let ProviderConfig::Anthropic(c) = ok("anthropic", json!({"anthropic_api_key": "k"})) else {
        panic!("variant")
    };
    assert_eq!(c.version, "2023-06-01");
    assert_eq!(c.api_base, "https://api.anthropic.com/v1");
    bad("anthropic", json!({}), "anthropic_api_key", REQUIRED);
    bad(
        "anthropic",
        json!({"anthropic_api_key": "k", "anthropic_version": 5}),
        "anthropic_version",
        "Input should be a valid string",
    );
}

/// The providers whose block is `<prefix>_api_key` plus our optional `<prefix>_api_base`.
#[test]
fn key_and_base_providers() {
    let cases: [(&str, &str); 8] = [
        ("cohere", "https://api.cohere.ai/v1"),
        (
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/models",
        ),
        (
            "palm",
            "https://generativelanguage.googleapis.com/v1beta3/models/",
        ),
        ("ai21labs", "https://api.ai21.com/studio/v1"),
        ("mosaicml", "https://models.hosted-on.mosaicml.hosting"),
        ("mistral", "https://api.mistral.ai/v1"),
        ("togetherai", "https://api.together.xyz/v1"),
        ("typesafe", "https://api.typesafe.ai/v1"),
    ];
    for (provider, default_base) in cases {
        let key = format!("{provider}_api_key");
        let base = format!("{provider}_api_base");
        let got = ok(provider, json!({ key.clone(): "k" }));
        let (api_key, api_base) = key_and_base(&got);
        assert_eq!(
            (api_key, api_base.as_str()),
            ("k", default_base),
            "{provider}"
        );
        let got = ok(provider, json!({ key.clone(): "k", base: "http://proxy" }));
        assert_eq!(key_and_base(&got).1, "http://proxy", "{provider}");
        bad(provider, json!({}), &key, REQUIRED);
    }
}

fn key_and_base(config: &ProviderConfig) -> (&str, String) {
    match config {
        ProviderConfig::Cohere(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::Gemini(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::Palm(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::Ai21Labs(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::MosaicMl(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::Mistral(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::TogetherAi(c) => (c.api_key.expose(), c.api_base.clone()),
        ProviderConfig::TypeSafe(c) => (c.api_key.expose(), c.api_base.clone()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn huggingface_tgi_needs_server_url() {
    let got = ok(
        "huggingface-text-generation-inference",
        json!({"hf_server_url": "http://tgi:8080"}),
    );
    assert_eq!(
        got,
        ProviderConfig::HuggingFaceTgi(HuggingFaceTgiConfig {
            server_url: "http://tgi:8080".into()
        })
    );
    bad(
        "huggingface-text-generation-inference",
        json!({}),
        "hf_server_url",
        REQUIRED,
    );
}

#[test]
fn mlflow_model_serving_needs_server_url() {
    let got = ok(
        "mlflow-model-serving",
        json!({"model_server_url": "http://m"}),
    );
    assert!(matches!(got, ProviderConfig::MlflowModelServing(c) if c.server_url == "http://m"));
    bad(
        "mlflow-model-serving",
        json!({}),
        "model_server_url",
        REQUIRED,
    );
}

#[test]
fn bedrock_aws_config_required() {
    bad("bedrock", json!({}), "aws_config", REQUIRED);
    bad(
        "bedrock",
        json!({"aws_config": "x"}),
        "aws_config",
        "Input should be a valid dictionary",
    );
}

fn aws(config: Value) -> BedrockConfig {
    match ok("amazon-bedrock", config) {
        ProviderConfig::Bedrock(c) => c,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bedrock_shapes() {
    let c = aws(json!({"aws_config": {}}));
    assert_eq!(c.aws_config, AwsConfig::Base { region: None });
    assert_eq!(c.endpoint_url, None);

    let c = aws(
        json!({"aws_config": {"aws_region": "us-east-1", "aws_bearer_token": "t"},
                       "aws_endpoint_url": "http://localhost:9000"}),
    );
    assert!(
        matches!(&c.aws_config, AwsConfig::BearerToken { bearer_token, .. } if bearer_token.expose() == "t")
    );
    assert_eq!(c.aws_config.region(), Some("us-east-1"));
    assert_eq!(c.endpoint_url.as_deref(), Some("http://localhost:9000"));

    let c = aws(json!({"aws_config": {"aws_role_arn": "arn:aws:iam::1:role/r"}}));
    assert!(matches!(
        c.aws_config,
        AwsConfig::AssumeRole {
            session_length_seconds: 900,
            ..
        }
    ));

    let c = aws(
        json!({"aws_config": {"aws_access_key_id": "id", "aws_secret_access_key": "s",
                                      "aws_session_token": "st"}}),
    );
    assert!(matches!(
        c.aws_config,
        AwsConfig::StaticKeys {
            session_token: Some(_),
            ..
        }
    ));
}

#[test]
fn bedrock_incomplete_keys_fall_back_with_a_warning() {
    let d = doc(
        "bedrock",
        json!({"aws_config": {"aws_access_key_id": "id"}}),
    );
    assert_eq!(
        warnings(&d),
        [format!("{PATH}.aws_config.aws_access_key_id: ignored: aws_config was read as the default AWS credential chain (no usable credentials given)")]
    );
}

#[test]
fn bedrock_wrong_types_are_errors() {
    bad(
        "bedrock",
        json!({"aws_config": {"aws_role_arn": 5}}),
        "aws_config.aws_role_arn",
        "Input should be a valid string",
    );
}

#[test]
fn openai_compatible_providers() {
    let cases = [
        ("groq", "https://api.groq.com/openai/v1"),
        ("deepseek", "https://api.deepseek.com/v1"),
        ("xai", "https://api.x.ai/v1"),
        ("openrouter", "https://openrouter.ai/api/v1"),
    ];
    for (provider, base) in cases {
        let got = ok(provider, json!({"api_key": "k"}));
        assert_eq!(
            got,
            ProviderConfig::OpenAiCompatible(OpenAiCompatibleConfig {
                api_key: crate::config::Secret::new("k"),
                api_base: base.into()
            }),
            "{provider}"
        );
        bad(provider, json!({}), "api_key", REQUIRED);
    }
}

#[test]
fn ollama_key_defaults() {
    let got = ok("ollama", json!({}));
    assert_eq!(
        got,
        ProviderConfig::OpenAiCompatible(OpenAiCompatibleConfig {
            api_key: crate::config::Secret::new("ollama"),
            api_base: "http://localhost:11434/v1".into()
        })
    );
    bad(
        "ollama",
        json!({"api_key": ["x"]}),
        "api_key",
        crate::config::keys::KEY_NOT_A_STRING,
    );
}

#[test]
fn portkey_block() {
    let ProviderConfig::Portkey(c) = ok(
        "portkey",
        json!({"api_key": "$PORTKEY", "portkey_provider": "openai", "provider_api_key": "$OPENAI"}),
    ) else {
        panic!("variant")
    };
    assert_eq!(c.api_base, "https://api.portkey.ai/v1");
    assert_eq!(c.portkey_provider.as_deref(), Some("openai"));
    assert_eq!(
        c.provider_api_key.map(|k| k.expose().to_owned()),
        Some("test-key".into())
    );
    bad("portkey", json!({}), "api_key", REQUIRED);
    bad(
        "portkey",
        json!({"api_key": "k", "provider_api_key": "$UNSET"}),
        "provider_api_key",
        "Environment variable 'UNSET' is not set (needed by endpoint 'e')",
    );
}

#[test]
fn databricks_all_optional() {
    assert_eq!(
        ok("databricks", json!({})),
        ProviderConfig::Databricks(DatabricksConfig {
            host: None,
            token: None,
            client_id: None,
            client_secret: None
        })
    );
    assert!(matches!(
        ok(
            "databricks-model-serving",
            json!({"host": "https://h", "token": "t"})
        ),
        ProviderConfig::Databricks(DatabricksConfig {
            host: Some(_),
            token: Some(_),
            ..
        })
    ));
    bad(
        "databricks",
        json!({"host": 1}),
        "host",
        "Input should be a valid string",
    );
}

#[test]
fn vertex_ai_block() {
    let ProviderConfig::VertexAi(c) = ok(
        "vertex_ai",
        json!({"vertex_project": "p", "vertex_anthropic_betas": "a, b,,"}),
    ) else {
        panic!("variant")
    };
    assert_eq!(c.project, "p");
    assert_eq!(
        c.anthropic_betas,
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    bad("vertex_ai", json!({}), "vertex_project", REQUIRED);
    bad(
        "vertex_ai",
        json!({"vertex_project": "p", "vertex_anthropic_betas": [1]}),
        "vertex_anthropic_betas[0]",
        "Input should be a valid string",
    );
}

#[test]
fn litellm_block() {
    let ProviderConfig::Litellm(c) = ok(
        "litellm",
        json!({"litellm_provider": "databricks",
               "litellm_auth_config": {"api_key": "$KEY", "auth_mode": "x", "api_base": "https://h/"}}),
    ) else {
        panic!("variant")
    };
    assert_eq!(
        c.api_key.map(|k| k.expose().to_owned()),
        Some("test-key".into())
    );
    let auth = c.auth_config.expect("auth config");
    assert!(!auth.contains_key("auth_mode") && !auth.contains_key("api_key"));
    assert_eq!(auth["api_base"], json!("https://h/serving-endpoints"));
    assert!(matches!(
        ok("litellm", json!({})),
        ProviderConfig::Litellm(_)
    ));
    bad(
        "litellm",
        json!({"litellm_auth_config": "x"}),
        "litellm_auth_config",
        "Input should be a valid dictionary",
    );
}

#[test]
fn sap_ai_core_block_is_empty_but_required() {
    assert_eq!(
        ok("sap-ai-core", json!({})),
        ProviderConfig::SapAiCore(SapAiCoreConfig {})
    );
    bad(
        "sap-ai-core",
        Value::Null,
        "",
        "A config must be supplied when setting a provider. The provider entry for Provider.SAP_AI_CORE is incorrect.",
    );
}

#[test]
fn mock_defaults_and_fields() {
    assert_eq!(
        ok("mock", json!({})),
        ProviderConfig::Mock(MockConfig::default())
    );
    let d = MockConfig::default();
    assert_eq!(
        (d.chunks, d.embedding_dims, d.fail_message.as_str()),
        (3, 8, "mock failure")
    );
    let got = ok(
        "mock",
        json!({"chunks": 5, "chunk_delay_ms": 10, "latency_ms": 20, "fail_status": 503,
               "fail_message": "boom", "fail_after_chunks": 2, "embedding_dims": 16}),
    );
    assert_eq!(
        got,
        ProviderConfig::Mock(MockConfig {
            chunks: 5,
            chunk_delay_ms: 10,
            latency_ms: 20,
            fail_status: Some(503),
            fail_message: "boom".into(),
            fail_after_chunks: Some(2),
            embedding_dims: 16,
        })
    );
}

#[test]
fn mock_ranges() {
    bad(
        "mock",
        json!({"embedding_dims": 0}),
        "embedding_dims",
        "Input should be greater than or equal to 1",
    );
    bad(
        "mock",
        json!({"embedding_dims": 8193}),
        "embedding_dims",
        "Input should be less than or equal to 8192",
    );
    bad(
        "mock",
        json!({"fail_status": 200}),
        "fail_status",
        "Input should be greater than or equal to 400",
    );
    bad(
        "mock",
        json!({"chunks": 0}),
        "chunks",
        "Input should be greater than or equal to 1",
    );
    bad(
        "mock",
        json!({"latency_ms": -1}),
        "latency_ms",
        "Input should be greater than or equal to 0",
    );
    bad(
        "mock",
        json!({"fail_message": 5}),
        "fail_message",
        "Input should be a valid string",
    );
}
