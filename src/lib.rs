//! Switchyard's HTTP and CLI shell around the `switchyard-actors` runtime.
//!
//! # Layout
//!
//! - [`settings`]: server settings from the `config` crate (file + `SWITCHYARD_*` variables).
//! - [`server`]: starts the control actors and the actix-web workers; `configure` declares routes.
//! - [`handlers`]: one module per API family (MLflow invocations, OpenAI `/v1`, metadata, ops).
//! - [`client_socket`]: noticing a client that hung up while its request waits.
//! - [`connection_load`]: open client connections against the cap, so slow clients are cut
//!   sooner when it is nearly reached.
//! - [`client_key`]: who a request counts against for rate limits.
//! - [`error`]: the single mapping from a request-path error to a status and JSON body.
//! - [`metrics`]: the Prometheus metrics behind `/metrics`.
//! - [`observe`]: request ids, the request span, and the per-request metrics/access-log record.
//! - [`openapi`]: the `/openapi.json` document.
//! - [`logging`]: log format and filter.

pub mod client_key;
pub mod client_socket;
pub mod connection_load;
pub mod error;
pub mod handlers;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod server;
pub mod settings;
pub mod shutdown;
