//! Parsing one `model.config` block into its typed [`ProviderConfig`], with MLflow's
//! defaults and cross-field rules. API keys go through `keys::resolve_api_key`.

use serde_json::{Map, Value};

use super::aws::aws_config;
use super::fields::{Obj, Report, FIELD_REQUIRED, NOT_A_DICT, NOT_A_LIST, NOT_A_STRING};
use super::keys::{resolve_api_key, KeySource};
use super::model::Secret;
use super::providers::*;

const ANTHROPIC_API_BASE: &str = "https://api.anthropic.com/v1";
const ANTHROPIC_VERSION: &str = "2023-06-01";
const COHERE_API_BASE: &str = "https://api.cohere.ai/v1";
const GEMINI_API_BASE: &str = "https://generativelanguage.googleapis.com/v1beta/models";
const PALM_API_BASE: &str = "https://generativelanguage.googleapis.com/v1beta3/models/";
const AI21LABS_API_BASE: &str = "https://api.ai21.com/studio/v1";
const MOSAICML_API_BASE: &str = "https://models.hosted-on.mosaicml.hosting";
const MISTRAL_API_BASE: &str = "https://api.mistral.ai/v1";
const TOGETHERAI_API_BASE: &str = "https://api.together.xyz/v1";
const TYPESAFE_API_BASE: &str = "https://api.typesafe.ai/v1";

/// Upper bounds for the mock's knobs: far beyond any useful test, low enough that a typo cannot
/// park a worker for hours or allocate gigabytes.
const MOCK_MAX_CHUNKS: i64 = 10_000;
const MOCK_MAX_DELAY_MS: i64 = 600_000;
const MOCK_MAX_EMBEDDING_DIMS: i64 = 8_192;

/// Parses `value` (the `model.config` mapping) for `provider`. `value` is `None` when the block
/// is absent or null; only the mock accepts that (the caller reports the others).
pub(crate) fn parse_block(
    rep: &mut Report,
    keys: &KeySource<'_>,
    provider: Provider,
    value: Option<&Value>,
    path: &str,
) -> Option<ProviderConfig> {
    let Some(value) = value else {
        return match provider {
            Provider::Mock => Some(ProviderConfig::Mock(MockConfig::default())),
            _ => None,
        };
    };
    let o = Obj::new(rep, value, path.to_owned())?;
    let b = Block { rep, keys, o };
    match provider {
        Provider::OpenAi | Provider::Azure => b.openai(),
        Provider::Anthropic => b.anthropic(),
        Provider::Cohere => b.key_and_base("cohere", COHERE_API_BASE, |api_key, api_base| {
            ProviderConfig::Cohere(CohereConfig { api_key, api_base })
        }),
        Provider::Gemini => b.key_and_base("gemini", GEMINI_API_BASE, |api_key, api_base| {
            ProviderConfig::Gemini(GeminiConfig { api_key, api_base })
        }),
        Provider::Palm => b.key_and_base("palm", PALM_API_BASE, |api_key, api_base| {
            ProviderConfig::Palm(PalmConfig { api_key, api_base })
        }),
        Provider::Ai21Labs => b.key_and_base("ai21labs", AI21LABS_API_BASE, |api_key, api_base| {
            ProviderConfig::Ai21Labs(Ai21LabsConfig { api_key, api_base })
        }),
        Provider::MosaicMl => b.key_and_base("mosaicml", MOSAICML_API_BASE, |api_key, api_base| {
            ProviderConfig::MosaicMl(MosaicMlConfig { api_key, api_base })
        }),
        Provider::Mistral => b.key_and_base("mistral", MISTRAL_API_BASE, |api_key, api_base| {
            ProviderConfig::Mistral(MistralConfig { api_key, api_base })
        }),
        Provider::TogetherAi => {
            b.key_and_base("togetherai", TOGETHERAI_API_BASE, |api_key, api_base| {
                ProviderConfig::TogetherAi(TogetherAiConfig { api_key, api_base })
            })
        }
        Provider::TypeSafe => b.key_and_base("typesafe", TYPESAFE_API_BASE, |api_key, api_base| {
            ProviderConfig::TypeSafe(TypeSafeConfig { api_key, api_base })
        }),
        Provider::HuggingFaceTgi => b
            .server_url("hf_server_url")
            .map(|server_url| ProviderConfig::HuggingFaceTgi(HuggingFaceTgiConfig { server_url })),
        Provider::MlflowModelServing => b.server_url("model_server_url").map(|server_url| {
            ProviderConfig::MlflowModelServing(MlflowModelServingConfig { server_url })
        }),
        Provider::Bedrock | Provider::AmazonBedrock => b.bedrock(),
        Provider::Groq
        | Provider::DeepSeek
        | Provider::Xai
        | Provider::OpenRouter
        | Provider::Ollama => b.openai_compatible(provider),
        Provider::Portkey => b.portkey(),
        Provider::Databricks | Provider::DatabricksModelServing => b.databricks(),
        Provider::VertexAi => b.vertex_ai(),
        Provider::Litellm => b.litellm(),
        Provider::SapAiCore => {
            b.o.warn_unknown(b.rep, &[]);
            Some(ProviderConfig::SapAiCore(SapAiCoreConfig {}))
        }
        Provider::Mock => b.mock(),
    }
}

/// One block being read: the report, how to resolve keys, and the mapping.
struct Block<'r, 'k, 'v> {
    rep: &'r mut Report,
    keys: &'r KeySource<'k>,
    o: Obj<'v>,
}

impl Block<'_, '_, '_> {
    /// A required, resolvable API key.
    fn key(&mut self, field: &str) -> Option<Secret> {
        match self.o.map.get(field) {
            None => {
                self.rep.error(&self.o.at(field), FIELD_REQUIRED);
                None
            }
            Some(value) => self.resolve(field, value),
        }
    }

    /// An optional, resolvable API key (absent or null → `None`).
    fn opt_key(&mut self, field: &str) -> Result<Option<Secret>, ()> {
        match self.o.get(field) {
            None => Ok(None),
            Some(value) => self.resolve(field, value).map(Some).ok_or(()),
        }
    }

    fn resolve(&mut self, field: &str, value: &Value) -> Option<Secret> {
        match resolve_api_key(value, self.keys) {
            Ok(secret) => Some(secret),
            Err(message) => {
                self.rep.error(&self.o.at(field), message);
                None
            }
        }
    }

    /// A non-resolvable secret (AWS keys, Databricks token): a plain optional string.
    fn opt_secret(&mut self, field: &str) -> Result<Option<Secret>, ()> {
        Ok(self.o.opt_str(self.rep, field)?.map(Secret::new))
    }

    fn opt_str(&mut self, field: &str) -> Result<Option<String>, ()> {
        self.o.opt_str(self.rep, field)
    }

    fn openai(mut self) -> Option<ProviderConfig> {
        self.o.warn_unknown(
            self.rep,
            &[
                "openai_api_key",
                "openai_api_type",
                "openai_api_base",
                "openai_api_version",
                "openai_deployment_name",
                "openai_organization",
            ],
        );
        let api_key = self.key("openai_api_key");
        let api_type = match self.o.get("openai_api_type") {
            None => Some(OpenAiApiType::OpenAi),
            // MLflow reads `info.get("openai_api_type") or "openai"`: empty means the default.
            Some(Value::String(s)) if s.is_empty() => Some(OpenAiApiType::OpenAi),
            Some(Value::String(s)) => {
                let parsed = OpenAiApiType::parse(s);
                if parsed.is_none() {
                    self.rep.error(
                        &self.o.at("openai_api_type"),
                        format!("Invalid OpenAI API type '{}'", s.to_lowercase()),
                    );
                }
                parsed
            }
            Some(_) => {
                self.rep.error(&self.o.at("openai_api_type"), NOT_A_STRING);
                None
            }
        };
        let api_base = self.opt_str("openai_api_base");
        let api_version = self.opt_str("openai_api_version");
        let deployment_name = self.opt_str("openai_deployment_name");
        let organization = self.opt_str("openai_organization");
        let (Ok(api_base), Ok(api_version), Ok(deployment_name), Ok(organization)) =
            (api_base, api_version, deployment_name, organization)
        else {
            return None;
        };
        let api_type = api_type?;
        let api_base = match api_type {
            OpenAiApiType::OpenAi => {
                if deployment_name.is_some() {
                    self.rep.error(
                        &self.o.at("openai_deployment_name"),
                        "OpenAI route configuration can only specify a value for 'openai_deployment_name' if 'openai_api_type' is 'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'. Found type: 'openai'",
                    );
                    return None;
                }
                api_base.unwrap_or_else(|| OPENAI_API_BASE.to_owned())
            }
            OpenAiApiType::Azure | OpenAiApiType::AzureAd => {
                if organization.is_some() {
                    self.rep.error(
                        &self.o.at("openai_organization"),
                        "OpenAI route configuration can only specify a value for 'openai_organization' if 'openai_api_type' is 'OpenAIAPIType.OPENAI'",
                    );
                    return None;
                }
                match (api_base, &deployment_name, &api_version) {
                    (Some(base), Some(_), Some(_)) => base,
                    _ => {
                        self.rep.error(
                            &self.o.path,
                            "OpenAI route configuration must specify 'openai_api_base', 'openai_deployment_name', and 'openai_api_version' if 'openai_api_type' is 'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'.",
                        );
                        return None;
                    }
                }
            }
        };
        Some(ProviderConfig::OpenAi(OpenAiConfig {
            api_key: api_key?,
            api_type,
            api_base,
            api_version,
            deployment_name,
            organization,
        }))
    }

    fn anthropic(mut self) -> Option<ProviderConfig> {
        self.o.warn_unknown(
            self.rep,
            &[
                "anthropic_api_key",
                "anthropic_version",
                "anthropic_api_base",
            ],
        );
        let api_key = self.key("anthropic_api_key");
        let version = self
            .o
            .str_or(self.rep, "anthropic_version", ANTHROPIC_VERSION);
        let api_base = self
            .o
            .str_or(self.rep, "anthropic_api_base", ANTHROPIC_API_BASE);
        Some(ProviderConfig::Anthropic(AnthropicConfig {
            api_key: api_key?,
            version,
            api_base,
        }))
    }

    /// The common `<prefix>_api_key` + `<prefix>_api_base` shape. Where MLflow hard-codes the
    /// base URL, `<prefix>_api_base` is our optional override (proxies, tests).
    fn key_and_base(
        mut self,
        prefix: &str,
        default_base: &str,
        build: impl FnOnce(Secret, String) -> ProviderConfig,
    ) -> Option<ProviderConfig> {
        let key_field = format!("{prefix}_api_key");
        let base_field = format!("{prefix}_api_base");
        self.o
            .warn_unknown(self.rep, &[key_field.as_str(), base_field.as_str()]);
        let api_key = self.key(&key_field);
        let api_base = self.o.str_or(self.rep, &base_field, default_base);
        Some(build(api_key?, api_base))
    }

    fn server_url(self, field: &str) -> Option<String> {
        self.o.warn_unknown(self.rep, &[field]);
        self.o.req_str(self.rep, field)
    }

    fn bedrock(mut self) -> Option<ProviderConfig> {
        self.o
            .warn_unknown(self.rep, &["aws_config", "aws_endpoint_url"]);
        let endpoint_url = self.opt_str("aws_endpoint_url");
        let aws_config = match self.o.map.get("aws_config") {
            None => {
                self.rep.error(&self.o.at("aws_config"), FIELD_REQUIRED);
                None
            }
            Some(value) => {
                let path = self.o.at("aws_config");
                let o = Obj::new(self.rep, value, path)?;
                aws_config(self.rep, &o)
            }
        };
        Some(ProviderConfig::Bedrock(BedrockConfig {
            aws_config: aws_config?,
            endpoint_url: endpoint_url.ok()?,
        }))
    }

    fn openai_compatible(mut self, provider: Provider) -> Option<ProviderConfig> {
        self.o.warn_unknown(self.rep, &["api_key", "api_base"]);
        let api_key = if provider == Provider::Ollama {
            // Ollama runs locally without auth; MLflow defaults the key to "ollama".
            self.opt_key("api_key")
                .ok()?
                .or_else(|| Some(Secret::new("ollama")))
        } else {
            self.key("api_key")
        };
        let api_base = self.o.str_or(
            self.rep,
            "api_base",
            default_api_base(provider).unwrap_or(""),
        );
        Some(ProviderConfig::OpenAiCompatible(OpenAiCompatibleConfig {
            api_key: api_key?,
            api_base,
        }))
    }

    fn portkey(mut self) -> Option<ProviderConfig> {
        self.o.warn_unknown(
            self.rep,
            &[
                "api_key",
                "api_base",
                "portkey_provider",
                "portkey_config",
                "provider_api_key",
            ],
        );
        let api_key = self.key("api_key");
        let api_base = self.o.str_or(
            self.rep,
            "api_base",
            default_api_base(Provider::Portkey).unwrap_or(""),
        );
        let portkey_provider = self.opt_str("portkey_provider");
        let portkey_config = self.opt_str("portkey_config");
        let provider_api_key = self.opt_key("provider_api_key");
        Some(ProviderConfig::Portkey(PortkeyConfig {
            api_key: api_key?,
            api_base,
            portkey_provider: portkey_provider.ok()?,
            portkey_config: portkey_config.ok()?,
            provider_api_key: provider_api_key.ok()?,
        }))
    }

    fn databricks(mut self) -> Option<ProviderConfig> {
        self.o
            .warn_unknown(self.rep, &["host", "token", "client_id", "client_secret"]);
        let host = self.opt_str("host");
        let token = self.opt_secret("token");
        let client_id = self.opt_str("client_id");
        let client_secret = self.opt_secret("client_secret");
        Some(ProviderConfig::Databricks(DatabricksConfig {
            host: host.ok()?,
            token: token.ok()?,
            client_id: client_id.ok()?,
            client_secret: client_secret.ok()?,
        }))
    }

    fn vertex_ai(mut self) -> Option<ProviderConfig> {
        self.o.warn_unknown(
            self.rep,
            &[
                "vertex_project",
                "vertex_location",
                "vertex_credentials",
                "vertex_anthropic_betas",
            ],
        );
        let project = self.o.req_str(self.rep, "vertex_project");
        let location = self.opt_str("vertex_location");
        let credentials = self.opt_secret("vertex_credentials");
        let anthropic_betas = match self.o.get("vertex_anthropic_betas") {
            None => Ok(None),
            // A comma-separated string is accepted too; "" means "drop the header".
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => self.string_list("vertex_anthropic_betas", items),
            Some(_) => {
                self.rep
                    .error(&self.o.at("vertex_anthropic_betas"), NOT_A_LIST);
                Err(())
            }
        };
        Some(ProviderConfig::VertexAi(VertexAiConfig {
            project: project?,
            location: location.ok()?,
            credentials: credentials.ok()?,
            anthropic_betas: anthropic_betas.ok()?,
        }))
    }

    fn string_list(&mut self, field: &str, items: &[Value]) -> Result<Option<Vec<String>>, ()> {
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                _ => {
                    self.rep
                        .error(&format!("{}[{i}]", self.o.at(field)), NOT_A_STRING);
                    ok = false;
                }
            }
        }
        if ok {
            Ok(Some(out))
        } else {
            Err(())
        }
    }

    fn litellm(mut self) -> Option<ProviderConfig> {
        self.o
            .warn_unknown(self.rep, &["litellm_provider", "litellm_auth_config"]);
        let provider = self.opt_str("litellm_provider").ok()?;
        let (auth_config, api_key) = match self.o.get("litellm_auth_config") {
            None => (None, None),
            Some(Value::Object(map)) => {
                let mut map: Map<String, Value> = map.clone();
                // MLflow drops its own `auth_mode`; LiteLLM does not understand it.
                map.remove("auth_mode");
                let api_key = match map.remove("api_key") {
                    None | Some(Value::Null) => None,
                    Some(value) => {
                        let path = self.o.at("litellm_auth_config.api_key");
                        match resolve_api_key(&value, self.keys) {
                            Ok(secret) => Some(secret),
                            Err(message) => {
                                self.rep.error(&path, message);
                                return None;
                            }
                        }
                    }
                };
                if provider.as_deref() == Some("databricks") {
                    normalise_databricks_base(&mut map);
                }
                (Some(map), api_key)
            }
            Some(_) => {
                self.rep
                    .error(&self.o.at("litellm_auth_config"), NOT_A_DICT);
                return None;
            }
        };
        Some(ProviderConfig::Litellm(LitellmConfig {
            provider,
            auth_config,
            api_key,
        }))
    }

    fn mock(self) -> Option<ProviderConfig> {
        self.o.warn_unknown(
            self.rep,
            &[
                "chunks",
                "chunk_delay_ms",
                "latency_ms",
                "fail_status",
                "fail_message",
                "fail_after_chunks",
                "embedding_dims",
            ],
        );
        let d = MockConfig::default();
        let rep = self.rep;
        let o = &self.o;
        let chunks = o.opt_int(rep, "chunks", 1, MOCK_MAX_CHUNKS);
        let chunk_delay_ms = o.opt_int(rep, "chunk_delay_ms", 0, MOCK_MAX_DELAY_MS);
        let latency_ms = o.opt_int(rep, "latency_ms", 0, MOCK_MAX_DELAY_MS);
        let fail_status = o.opt_int(rep, "fail_status", 400, 599);
        let fail_message = o.opt_str(rep, "fail_message");
        let fail_after_chunks = o.opt_int(rep, "fail_after_chunks", 0, MOCK_MAX_CHUNKS);
        let embedding_dims = o.opt_int(rep, "embedding_dims", 1, MOCK_MAX_EMBEDDING_DIMS);
        // Every range above fits the target integer type, so the casts cannot truncate.
        Some(ProviderConfig::Mock(MockConfig {
            chunks: chunks.ok()?.map_or(d.chunks, |n| n as u32),
            chunk_delay_ms: chunk_delay_ms.ok()?.map_or(d.chunk_delay_ms, |n| n as u64),
            latency_ms: latency_ms.ok()?.map_or(d.latency_ms, |n| n as u64),
            fail_status: fail_status.ok()?.map(|n| n as u16),
            fail_message: fail_message.ok()?.unwrap_or(d.fail_message),
            fail_after_chunks: fail_after_chunks.ok()?.map(|n| n as u32),
            embedding_dims: embedding_dims
                .ok()?
                .map_or(d.embedding_dims, |n| n as usize),
        }))
    }
}

/// MLflow appends `/serving-endpoints` to a Databricks `api_base` that lacks it.
fn normalise_databricks_base(map: &mut Map<String, Value>) {
    if let Some(Value::String(base)) = map.get_mut("api_base") {
        if base.is_empty() {
            return;
        }
        let trimmed = base.trim_end_matches('/').to_owned();
        *base = if trimmed.contains("/serving-endpoints") {
            trimmed
        } else {
            format!("{trimmed}/serving-endpoints")
        };
    }
}

#[cfg(test)]
#[path = "blocks_tests.rs"]
mod tests;
