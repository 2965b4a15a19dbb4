//! HTTP handlers, one module per API family.

pub mod invoke;
pub mod metadata;
pub mod mlflow;
pub mod openai;
pub mod ops;

use std::sync::Arc;

use switchyard_actors::config::EndpointType;
use switchyard_actors::limits::RateLimiter;

use switchyard_actors::breaker::Breakers;
use switchyard_actors::registry::ReloadStats;

use crate::client_key::KeyPolicy;
use crate::client_socket::ClientSocket;
use crate::connection_load::ConnectionLoad;
use actix_web::{HttpMessage, HttpRequest};

use crate::error::ApiFamily;
use crate::metrics::Metrics;
use crate::observe::{RequestId, RequestRecord};
use crate::shutdown::GraceEnd;
use invoke::InvokeContext;
use switchyard_actors::dispatch::{RouteTable, SharedTable, Target};

/// Per-worker state every handler reaches through `web::Data`.
pub struct WorkerState {
    /// This worker's route table; loading it takes no lock and sends no message.
    pub table: SharedTable,
    pub body_limit: usize,
    /// How long a client has to send its whole request body (`read_body` answers 408 after).
    pub body_timeout: std::time::Duration,
    /// The body timeout while the connections fill most of the cap (see [`ConnectionLoad`]).
    pub busy_body_timeout: std::time::Duration,
    /// Open client connections against the cap, shared by every worker.
    pub connection_load: Arc<ConnectionLoad>,
    /// Most JSON values one body may build (`max_json_nodes`).
    pub max_json_nodes: usize,
    /// Shared by every worker, so limits are exact across them.
    pub limiter: Arc<RateLimiter>,
    /// Shared by every worker, so a failing provider is noticed whichever worker calls it.
    pub breakers: Arc<Breakers>,
    pub key_policy: KeyPolicy,
    pub stream_heartbeat: std::time::Duration,
    pub metrics: Arc<Metrics>,
    /// Read at scrape time by `/metrics`.
    pub reloads: Arc<ReloadStats>,
    /// When the SIGTERM grace period is over, requests still running end with a 503 or error event.
    pub grace_end: GraceEnd,
}

impl WorkerState {
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Starts the metrics and access-log record of one invocation.
    pub fn record(&self, request: &HttpRequest) -> RequestRecord {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        RequestRecord::start(self.metrics.clone(), id, request.path())
    }

    pub fn invoke_context<'a>(
        &'a self,
        family: ApiFamily,
        request: &HttpRequest,
        client_key: &'a str,
    ) -> InvokeContext<'a> {
        InvokeContext {
            family,
            limiter: &self.limiter,
            breakers: &self.breakers,
            client_key,
            heartbeat: self.stream_heartbeat,
            client: request.conn_data::<ClientSocket>().cloned(),
            grace_end: &self.grace_end,
        }
    }
}

/// The unified API a target serves.
pub fn target_type(target: &Target) -> EndpointType {
    match target {
        Target::Endpoint(endpoint) => endpoint.endpoint.endpoint_type,
        Target::Route(route) => route.route.task_type,
    }
}
