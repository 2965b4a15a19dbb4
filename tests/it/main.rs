//! Every integration test of the gateway, built as one test binary: the suites start the real
//! `switchyard` binary on port 0 (see [`common`]) and drive it over HTTP on 127.0.0.1. One binary
//! instead of one per file links the test harness once, and shares [`common`] without
//! `dead_code` allowances. Run one suite with `cargo nextest run --test it SUITE::`.

// A test crate: a failed unwrap or assertion is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod common;
mod connection_buffers;
mod deploy;
mod hardening;
mod hot_reload;
mod invocations;
mod metadata;
mod metrics;
mod openai;
mod provider_ai21labs;
mod provider_anthropic;
mod provider_bedrock;
mod provider_cohere;
mod provider_databricks;
mod provider_gemini;
mod provider_mistral;
mod provider_mlflow_serving;
mod provider_mosaicml;
mod provider_openai_compatible;
mod provider_palm;
mod provider_portkey;
mod provider_tgi;
mod provider_togetherai;
mod rate_limits;
mod real_clients;
mod shutdown;
mod traffic;
