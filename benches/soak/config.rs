//! The soak's endpoint file, in two valid variants that the run alternates between every
//! [`RELOAD_EVERY`], and its canary keys.
//!
//! The variants differ where a reload does real work: `chat`, `embed` and `fb-primary` change
//! their model (so each reload replaces their provider actors while requests are in flight),
//! `chat-retry` its backoff ceiling, and a spare endpoint is added and removed (`spare-a` in A,
//! `spare-b` in B). Rate limit, breaker and fallback policies are the same in both, so the
//! client's expectations do not depend on which variant served a request.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Calls per second `chat-limited` admits.
pub const LIMIT_PER_SECOND: u64 = 20;
/// `chat-breaker`: consecutive failures that open it, and how long it stays open.
pub const BREAKER_THRESHOLD: u32 = 5;
pub const BREAKER_OPEN: Duration = Duration::from_secs(2);
/// `chat-retry`: attempts per request, first included.
pub const RETRY_ATTEMPTS: u32 = 3;
/// Content events in every mock stream of the soak (the mock's `/evN` prefix).
pub const STREAM_EVENTS: usize = 8;
/// The gateway's first-byte timeout; `stall` faults hold longer.
pub const FIRST_BYTE_TIMEOUT_SECS: u64 = 4;
/// The environment variable holding the `embed` endpoint's key.
pub const KEY_ENV: &str = "SOAK_CANARY_KEY";

/// Recognisable keys, different per run: searching for [`Canaries::core`] finds any of them, or
/// any fragment long enough to matter.
pub struct Canaries {
    pub core: String,
    /// Written into the YAML as is (`chat`, `chat-retry`, `chat-breaker`, `chat-limited`, `chat-slow`).
    pub literal: String,
    /// Given to the gateway as `$SOAK_CANARY_KEY` (`embed`).
    pub env: String,
    /// Read from a key file (`fb-primary`, `fb-backup`).
    pub file: String,
    pub key_file: PathBuf,
}

impl Canaries {
    pub fn new(dir: &Path, seed: u64) -> std::io::Result<Self> {
        let mut state = seed ^ 0xC0FF_EE00_D15E_A5E5;
        let mut core = String::from("c4n4ry");
        for _ in 0..3 {
            state = crate::traffic::splitmix(state);
            core.push_str(&format!("{state:016x}"));
        }
        let key_file = dir.join("openai.key");
        let file = format!("sk-soak-file-{core}");
        // A trailing newline, as editors leave it: the gateway trims it.
        std::fs::write(&key_file, format!("{file}\n"))?;
        Ok(Self {
            literal: format!("sk-soak-literal-{core}"),
            env: format!("sk-soak-env-{core}"),
            file,
            key_file,
            core,
        })
    }

    pub fn all(&self) -> [&str; 3] {
        [&self.literal, &self.env, &self.file]
    }
}

/// Where the endpoints point.
pub struct Upstreams {
    /// The load test's mock, straight.
    pub mock_port: u16,
    /// The fault proxy in front of it.
    pub proxy_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    A,
    B,
}

impl Variant {
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// The endpoint only this variant has.
    pub fn spare(self) -> &'static str {
        match self {
            Self::A => "spare-a",
            Self::B => "spare-b",
        }
    }
}

pub fn yaml(variant: Variant, upstreams: &Upstreams, keys: &Canaries) -> String {
    let b = variant == Variant::B;
    let proxy = |tag: &str, prefix: &str| {
        format!("http://127.0.0.1:{}/{tag}{prefix}/v1", upstreams.proxy_port)
    };
    let mock = |prefix: &str| crate::mock::base_url(upstreams.mock_port, prefix);
    let events = format!("/ev{STREAM_EVENTS}");
    let endpoint = |name: &str, kind: &str, model: &str, key: &str, base: &str, extra: &str| {
        format!(
            "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: openai\n      name: {model}\n      config:\n        openai_api_key: \"{key}\"\n        openai_api_base: \"{base}\"\n{extra}"
        )
    };
    let key_file = keys.key_file.display().to_string();
    let mut out = format!(
        "# Switchyard soak test, variant {variant:?} (rewritten every {} s)\nendpoints:\n",
        RELOAD_EVERY.as_secs()
    );
    out += &endpoint(
        "chat",
        "chat",
        if b { "gpt-4o-mini-b" } else { "gpt-4o-mini" },
        &keys.literal,
        &proxy("chat", &events),
        "",
    );
    out += &endpoint(
        "chat-retry",
        "chat",
        "gpt-4o-mini",
        &keys.literal,
        &proxy("retry", &events),
        &format!(
            "    retries:\n      attempts: {RETRY_ATTEMPTS}\n      backoff_ms: 10\n      max_backoff_ms: {}\n",
            if b { 200 } else { 100 }
        ),
    );
    out += &endpoint(
        "chat-breaker",
        "chat",
        "gpt-4o-mini",
        &keys.literal,
        &proxy("breaker", &events),
        &format!(
            "    circuit_breaker:\n      failure_threshold: {BREAKER_THRESHOLD}\n      open_secs: {}\n",
            BREAKER_OPEN.as_secs()
        ),
    );
    out += &endpoint(
        "embed",
        "embeddings",
        if b {
            "text-embedding-3-large"
        } else {
            "text-embedding-3-small"
        },
        &format!("${KEY_ENV}"),
        &proxy("embed", ""),
        "",
    );
    out += &endpoint(
        "chat-limited",
        "chat",
        "gpt-4o-mini",
        &keys.literal,
        &mock(&events),
        &format!("    limit:\n      renewal_period: second\n      calls: {LIMIT_PER_SECOND}\n"),
    );
    out += &endpoint(
        "chat-slow",
        "chat",
        "gpt-4o-mini",
        &keys.literal,
        &mock(&format!("/lat150{events}/gap25")),
        "",
    );
    out += &endpoint(
        "fb-primary",
        "chat",
        if b { "gpt-4o" } else { "gpt-4o-mini" },
        &key_file,
        &proxy("primary", &events),
        "",
    );
    out += &endpoint(
        "fb-backup",
        "chat",
        "gpt-4o-mini",
        &key_file,
        &proxy("backup", &events),
        "",
    );
    out += &format!(
        "  - name: {}\n    endpoint_type: llm/v1/chat\n    model:\n      provider: mock\n",
        variant.spare()
    );
    out += "routes:\n  - name: chat-fallback\n    task_type: llm/v1/chat\n    fallback: true\n    destinations:\n      - name: fb-primary\n        traffic_percentage: 100\n      - name: fb-backup\n        traffic_percentage: 0\n";
    out
}

/// Writes a variant the two ways editors and tools do, alternately: B in place (truncate and
/// write), A by writing a temporary file and renaming it over the config. With a `split_pause`,
/// B is written as a careless tool does: the first half of its entries (a prefix that is valid
/// YAML with endpoints missing), a pause with the file still open, then the rest. Blocks for the
/// pause: call it off the driver's thread.
pub fn write(
    path: &Path,
    variant: Variant,
    text: &str,
    split_pause: Duration,
) -> std::io::Result<()> {
    match variant {
        Variant::B if split_pause.is_zero() => std::fs::write(path, text),
        Variant::B => {
            use std::io::Write;
            let (first, rest) = text.split_at(split_point(text));
            let mut file = std::fs::File::create(path)?;
            file.write_all(first.as_bytes())?;
            file.flush()?;
            std::thread::sleep(split_pause);
            file.write_all(rest.as_bytes())
        }
        Variant::A => {
            let temporary = path.with_extension("yaml.tmp");
            std::fs::write(&temporary, text)?;
            std::fs::rename(&temporary, path)
        }
    }
}

/// The start of the list entry (`  - name:`) nearest the middle of `text`, else the middle line.
fn split_point(text: &str) -> usize {
    let middle = text.len() / 2;
    let entries = text.match_indices("\n  - name:").map(|(at, _)| at + 1);
    entries
        .min_by_key(|at| at.abs_diff(middle))
        .or_else(|| text[middle..].find('\n').map(|at| middle + at + 1))
        .unwrap_or(middle)
}
