//! The per-worker Dispatcher actor and the route table it publishes.
//!
//! Each actix-web worker thread owns one dispatcher. On every `RoutesUpdated` it reconciles the
//! worker's provider actors (an unchanged endpoint keeps its actor, and with it its pooled
//! connections; a changed or new one gets a fresh actor) and swaps the worker's [`RouteTable`] in
//! one atomic store. Handlers read the table with a lock-free load and never message the
//! dispatcher; a request that already loaded the old table finishes on the old actors.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::config::{Endpoint, GatewayConfig, TrafficRoute};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::RoutesUpdated;
use crate::provider::{ProviderSupervisor, UpstreamSettings};

/// An endpoint and the actor that serves it on this worker.
#[derive(Clone)]
pub struct EndpointTarget {
    pub endpoint: Arc<Endpoint>,
    pub provider: Addr<ProviderSupervisor>,
}

/// A traffic-split route with its destinations resolved to this worker's actors.
#[derive(Clone)]
pub struct RouteTarget {
    pub route: Arc<TrafficRoute>,
    /// Destinations with a non-zero share, each with its cumulative upper bound in 0..100.
    weighted: Vec<(u32, EndpointTarget)>,
    /// Every destination in file order (0% ones included): the fallback order.
    ordered: Vec<EndpointTarget>,
}

impl RouteTarget {
    /// Picks a destination from a uniform draw in `0..100`; a 0% destination is never picked.
    pub fn choose(&self, draw: u32) -> Option<&EndpointTarget> {
        self.weighted
            .iter()
            .find(|(upper, _)| draw < *upper)
            .or_else(|| self.weighted.last())
            .map(|(_, target)| target)
    }
}

/// What a name resolves to.
#[derive(Clone)]
pub enum Target {
    Endpoint(EndpointTarget),
    Route(RouteTarget),
}

impl Target {
    /// The endpoints to try for one request, in order: the endpoint itself; for a route, the
    /// destination drawn by weight, followed (when the route has `fallback: true`) by the other
    /// destinations in file order.
    pub fn candidates(&self) -> Result<Vec<EndpointTarget>, GatewayError> {
        let first = self.pick_endpoint()?;
        let Target::Route(route) = self else {
            return Ok(vec![first]);
        };
        let mut candidates = vec![first];
        if route.route.fallback {
            for destination in &route.ordered {
                if destination.endpoint.name != candidates[0].endpoint.name {
                    candidates.push(destination.clone());
                }
            }
        }
        Ok(candidates)
    }

    /// The endpoint that serves this request: the endpoint itself, or for a route a destination
    /// drawn at random by weight (a fresh draw per request, as MLflow does).
    pub fn pick_endpoint(&self) -> Result<EndpointTarget, GatewayError> {
        match self {
            Target::Endpoint(endpoint) => Ok(endpoint.clone()),
            Target::Route(route) => route
                .choose(rand::random_range(0..100u32))
                .cloned()
                .ok_or_else(|| {
                    GatewayError::new(
                        ErrorKind::Unavailable,
                        503,
                        format!(
                            "The route '{}' has no destination with traffic.",
                            route.route.name
                        ),
                    )
                }),
        }
    }
}

/// One worker's immutable view of the config, swapped whole on reload.
pub struct RouteTable {
    pub generation: u64,
    pub config: Arc<GatewayConfig>,
    targets: HashMap<String, Target>,
}

impl RouteTable {
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.get(name)
    }
}

/// The handle handlers keep: a table that the dispatcher replaces atomically.
pub type SharedTable = Arc<ArcSwap<RouteTable>>;

pub struct Dispatcher {
    table: SharedTable,
    upstream: UpstreamSettings,
}

impl Dispatcher {
    /// Builds the worker's first table right away (so the worker never serves an empty table) and
    /// returns the dispatcher with the shared handle. Must run on the worker's thread, since the
    /// provider actors start on the current arbiter.
    pub fn new(
        generation: u64,
        config: Arc<GatewayConfig>,
        upstream: UpstreamSettings,
    ) -> (Self, SharedTable) {
        let table = build_table(generation, config, None, &upstream);
        let shared = Arc::new(ArcSwap::from_pointee(table));
        (
            Self {
                table: shared.clone(),
                upstream,
            },
            shared,
        )
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;
}

impl Handler<RoutesUpdated> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: RoutesUpdated, _: &mut Self::Context) {
        let current = self.table.load();
        if msg.generation <= current.generation {
            return;
        }
        let table = build_table(msg.generation, msg.config, Some(&current), &self.upstream);
        self.table.store(Arc::new(table));
    }
}

fn build_table(
    generation: u64,
    config: Arc<GatewayConfig>,
    previous: Option<&RouteTable>,
    upstream: &UpstreamSettings,
) -> RouteTable {
    let mut endpoints: HashMap<String, EndpointTarget> = HashMap::new();
    for endpoint in &config.endpoints {
        let reused = previous.and_then(|table| match table.targets.get(&endpoint.name) {
            Some(Target::Endpoint(old))
                if *old.endpoint == **endpoint && old.provider.connected() =>
            {
                Some(old.clone())
            }
            _ => None,
        });
        let target = reused.unwrap_or_else(|| EndpointTarget {
            endpoint: endpoint.clone(),
            provider: ProviderSupervisor::start_supervised(endpoint.clone(), upstream.clone()),
        });
        endpoints.insert(endpoint.name.clone(), target);
    }

    let mut targets: HashMap<String, Target> =
        HashMap::with_capacity(endpoints.len() + config.routes.len());
    for route in &config.routes {
        let mut upper = 0;
        let mut weighted = Vec::with_capacity(route.destinations.len());
        let mut ordered = Vec::with_capacity(route.destinations.len());
        for destination in &route.destinations {
            // Validation guarantees every destination names an endpoint of the right type.
            let Some(target) = endpoints.get(&destination.name) else {
                continue;
            };
            ordered.push(target.clone());
            if destination.traffic_percentage > 0 {
                upper += destination.traffic_percentage;
                weighted.push((upper, target.clone()));
            }
        }
        targets.insert(
            route.name.clone(),
            Target::Route(RouteTarget {
                route: route.clone(),
                weighted,
                ordered,
            }),
        );
    }
    for (name, target) in endpoints {
        targets.insert(name, Target::Endpoint(target));
    }
    RouteTable {
        generation,
        config,
        targets,
    }
}
