//! Switchyard's runtime: everything between an HTTP handler and a provider, with no HTTP server
//! inside.
//!
//! # Layout
//!
//! - [`config`]: the endpoint YAML, from raw text to a validated [`config::GatewayConfig`], with
//!   `$ENV` / file key resolution.
//! - [`schema`]: the unified request, response and stream-chunk types (MLflow / OpenAI shapes) and
//!   their validation into pydantic-style 422 details.
//! - [`error`]: the single request-path error type.

pub mod breaker;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod framing;
/// The checks the fuzz targets (and the corpus replay test) run; only built for them.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_checks;
pub mod limits;
pub mod messages;
pub mod provider;
pub mod providers;
pub mod registry;
pub mod schema;
pub mod sse;
pub mod upstream;
pub mod watcher;
