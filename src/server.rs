//! Wiring: starts the control actors (registry, config watcher, SIGHUP listener), then the
//! actix-web server whose every worker gets its own dispatcher and provider actors.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::h1::SendTimeout;
use actix_web::{web, App, HttpServer};
use switchyard_actors::breaker::Breakers;
use switchyard_actors::config::GatewayConfig;
use switchyard_actors::dispatch::Dispatcher;
use switchyard_actors::limits::RateLimiter;
use switchyard_actors::messages::{ForceReload, RegisterWorker};
use switchyard_actors::registry::Registry;
use switchyard_actors::watcher::ConfigWatcher;
use utoipa_swagger_ui::SwaggerUi;

use crate::client_key::{HeaderTrust, KeyPolicy};
use crate::client_socket::ClientSocket;
use crate::connection_load::ConnectionLoad;
use crate::handlers::{metadata, mlflow, openai, ops, WorkerState};
use crate::metrics::Metrics;
use crate::observe::{request_id, RequestSpan};
use crate::settings::Settings;
use crate::shutdown::{GraceEnd, FINAL_WRITE_MARGIN};
use tracing_actix_web::TracingLogger;

/// Every path pattern the server routes, used by the trailing-slash redirect in the fallback.
pub const ROUTED_PATHS: &[&str] = &[
    "/health",
    "/metrics",
    "/api/2.0/endpoints/",
    "/api/2.0/endpoints/limits/",
    "/api/2.0/endpoints/limits/{endpoint}",
    "/api/2.0/gateway/limits/",
    "/api/2.0/gateway/limits/{endpoint}",
    "/api/2.0/endpoints/{name}",
    "/api/2.0/gateway/routes/",
    "/api/2.0/gateway/routes/{name}",
    "/api/3.0/gateway/endpoint/{name}",
    "/api/3.0/gateway/route/{name}",
    "/endpoints/{name}/invocations",
    "/gateway/{name}/invocations",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
];

/// Declares every route once; used by the server and by tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use crate::error::method_not_allowed;
    let get = |path: &'static str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(web::to(|| async { method_not_allowed() }))
    };
    // Invocation paths first: actix matches resources in order, and every pattern tried costs a
    // regex match on the hot path.
    cfg.service(get(
        "/endpoints/{name}/invocations",
        web::post().to(mlflow::invocations),
    ))
    .service(get(
        "/gateway/{name}/invocations",
        web::post().to(mlflow::invocations),
    ))
    .service(get("/v1/chat/completions", web::post().to(openai::chat)))
    .service(get("/v1/completions", web::post().to(openai::completions)))
    .service(get("/v1/embeddings", web::post().to(openai::embeddings)))
    .service(
        // HEAD too: load balancers and uptime checkers probe with it.
        web::resource("/health")
            .route(web::get().to(ops::health))
            .route(web::head().to(ops::health))
            .default_service(web::to(|| async { method_not_allowed() })),
    )
    .service(get("/metrics", web::get().to(ops::metrics)))
    .service(web::resource("/").route(web::get().to(ops::root)))
    .service(web::resource("/docs").route(web::get().to(ops::docs_redirect)))
    .service(web::resource("/favicon.ico").route(web::get().to(ops::favicon)))
    .service(get(
        "/api/2.0/endpoints/",
        web::get().to(metadata::list_endpoints),
    ))
    .service(get(
        "/api/2.0/endpoints/limits/",
        web::post().to(metadata::set_limits),
    ))
    .service(get(
        "/api/2.0/gateway/limits/",
        web::post().to(metadata::set_limits),
    ))
    .service(get(
        "/api/2.0/endpoints/limits/{endpoint}",
        web::get().to(metadata::get_limits),
    ))
    .service(get(
        "/api/2.0/gateway/limits/{endpoint}",
        web::get().to(metadata::get_limits),
    ))
    .service(get(
        "/api/2.0/endpoints/{name}",
        web::get().to(metadata::get_endpoint),
    ))
    .service(get(
        "/api/2.0/gateway/routes/",
        web::get().to(metadata::list_legacy_routes),
    ))
    .service(get(
        "/api/2.0/gateway/routes/{name}",
        web::get().to(metadata::get_legacy_route),
    ))
    .service(get(
        "/api/3.0/gateway/endpoint/{name}",
        web::get().to(metadata::get_endpoint),
    ))
    .service(get(
        "/api/3.0/gateway/route/{name}",
        web::get().to(metadata::get_traffic_route),
    ))
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", crate::openapi::document()))
    .default_service(web::to(ops::fallback));
}

/// What `run` needs besides the settings: the endpoint file and the config validated from it.
pub struct Startup {
    pub config_path: PathBuf,
    /// The file's text as validated, so the watcher does not reload identical content.
    pub config_text: String,
    pub config: GatewayConfig,
}

/// Serves on `listener` until SIGINT/SIGTERM, then drains for `shutdown_grace_secs`.
/// Must be called inside an actix `System`.
pub async fn run(
    settings: Settings,
    startup: Startup,
    listener: TcpListener,
) -> std::io::Result<()> {
    let registry = Registry::new(startup.config);
    let current = registry.current();
    let reloads = registry.stats();
    let metrics = Metrics::new()
        .map(Arc::new)
        .map_err(|e| std::io::Error::other(format!("metrics: {e}")))?;
    let registry = registry.start();

    let watcher = ConfigWatcher::new(
        startup.config_path.clone(),
        &startup.config_text,
        registry.clone(),
        settings.watch(),
    )
    .start();
    forward_sighup(watcher);

    let upstream = settings.upstream();
    let body_limit = settings.body_limit_bytes;
    let body_timeout = Duration::from_millis(settings.client_body_timeout_ms);
    let busy_body_timeout = Duration::from_millis(settings.client_body_timeout_busy_ms);
    let cap_per_worker = connection_cap(&settings)?;
    let connection_load = ConnectionLoad::new(cap_per_worker, settings.workers);
    let load = connection_load.clone();
    let send_timeout = SendTimeout(Duration::from_millis(settings.client_send_timeout_ms));
    let max_json_nodes = settings.max_json_nodes;
    let stream_heartbeat_ms = settings.stream_heartbeat_ms;
    let limits = &settings.rate_limits;
    let limiter = RateLimiter::from_uri(
        &limits.storage,
        Duration::from_millis(limits.redis_timeout_ms.max(1)),
        limits.fail_open,
        limits.memory_bounds(),
    )
    .map(Arc::new)
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let key_policy = HeaderTrust::parse(&limits.trust_key_header_from)
        .and_then(|trust| KeyPolicy::parse(&limits.key, &limits.trusted_proxies, trust))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tracing::info!(storage = limiter.storage_name(), "rate limits ready");
    let breakers = Arc::new(Breakers::new());
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let grace_end = GraceEnd::after_sigterm(grace);
    let server = HttpServer::new(move || {
        // Runs once on each worker thread: that worker's dispatcher and provider actors live here.
        let snapshot = current.load_full();
        let (dispatcher, table) = Dispatcher::new(
            snapshot.generation,
            snapshot.config.clone(),
            upstream.clone(),
        );
        registry.do_send(RegisterWorker {
            dispatcher: dispatcher.start(),
        });
        App::new()
            .app_data(web::Data::new(WorkerState {
                table,
                body_limit,
                body_timeout,
                busy_body_timeout,
                connection_load: connection_load.clone(),
                max_json_nodes,
                limiter: limiter.clone(),
                breakers: breakers.clone(),
                stream_heartbeat: Duration::from_millis(stream_heartbeat_ms),
                metrics: metrics.clone(),
                reloads: reloads.clone(),
                key_policy: key_policy.clone(),
                grace_end: grace_end.clone(),
            }))
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(actix_web::middleware::from_fn(request_id))
            .configure(configure)
    })
    .on_connect(move |connection, data| {
        ClientSocket::capture(connection, data);
        data.insert(load.opened());
        // Read by the (patched) HTTP/1 dispatcher: a client that accepts no byte of a reply
        // for this long is dropped, with the handler and upstream request behind it.
        data.insert(send_timeout);
    })
    .workers(settings.workers)
    .keep_alive(Duration::from_secs(settings.keep_alive_secs))
    .client_request_timeout(Duration::from_millis(settings.client_request_timeout_ms))
    // Past the grace period the gateway ends what is left itself (`shutdown`); actix's forced
    // stop comes a moment later, once those final answers are written.
    .shutdown_timeout((grace + FINAL_WRITE_MARGIN).as_secs())
    .max_connections(cap_per_worker)
    .listen(listener)?;

    for address in server.addrs() {
        // A plain line on stdout (not a log line), so scripts and tests can find the port.
        println!("Switchyard listening on http://{address}");
    }
    tracing::info!(workers = settings.workers, config = %startup.config_path.display(), "gateway started");
    server.run().await
}

/// The settings' cap, or, when it was left at 0 (`main` resolves it first), the one derived
/// from the current open-file limit: actix would take 0 as "accept nothing".
fn connection_cap(settings: &Settings) -> std::io::Result<usize> {
    if settings.max_connections_per_worker > 0 {
        return Ok(settings.max_connections_per_worker);
    }
    let (open_files, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    settings
        .connection_cap(open_files)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// `SIGHUP` forces a config reload, as it does for most Unix daemons. The handler is registered
/// before this returns (and so before the "listening" line), because an unhandled SIGHUP kills
/// the process.
fn forward_sighup(watcher: Addr<ConfigWatcher>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reloads happen on file changes only");
            return;
        };
        actix_rt::spawn(async move {
            while hangups.recv().await.is_some() {
                watcher.do_send(ForceReload);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = watcher;
}
