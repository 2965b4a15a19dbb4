//! The `switchyard` command: parses the CLI, loads settings and the endpoint file, and either
//! validates it or serves it.

use std::net::{TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use socket2::{Domain, Socket, Type};
use switchyard::server::{self, Startup};
use switchyard::settings::{Settings, SETTINGS_FILE_ENV};
use switchyard_actors::config::{self, LoadOptions};

/// mimalloc: allocation is a fifth of a request's CPU with glibc's allocator (benches/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit`: its position in mimalloc v3's `mi_option_e`, which
/// libmimalloc-sys 0.1.49 (pinned in Cargo.toml) builds but has no Rust constant for.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Arenas committed eagerly keep every page the start-up work touched (config parsing, the
/// OpenAPI document, regexes) resident for good: 9 MiB of an idle gateway's 25. Committing on
/// demand lets mimalloc purge them; throughput is unchanged (benches/RESULTS.md).
///
/// It runs as a constructor, before `main`: the Rust runtime allocates before `main`, and the
/// arena that first allocation reserves keeps the setting it was made with.
#[ctor::ctor(unsafe)]
fn commit_arena_memory_on_demand() {
    // SAFETY: sets an integer option; mimalloc allows it at any time from any thread, and an
    // option that is unknown or out of range is ignored.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A fast, hot-reloading LLM gateway (MLflow AI Gateway compatible)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway on an endpoint file; edits to the file apply without a restart.
    Start(StartArgs),
    /// Check an endpoint file completely (including `$ENV` keys and key files) and report every problem.
    Validate(ValidateArgs),
}

#[derive(Args)]
struct StartArgs {
    /// The endpoint YAML file.
    #[arg(long, env = "MLFLOW_GATEWAY_CONFIG")]
    config_path: PathBuf,
    /// Address to listen on [default: 127.0.0.1, or the settings' host].
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 5000, or the settings' port].
    #[arg(long)]
    port: Option<u16>,
    /// Worker threads [default: one per core, or the settings' workers].
    #[arg(long)]
    workers: Option<usize>,
    /// Server settings file (TOML or YAML); `SWITCHYARD_*` variables override it.
    #[arg(long, env = SETTINGS_FILE_ENV)]
    settings: Option<PathBuf>,
}

#[derive(Args)]
struct ValidateArgs {
    /// The endpoint YAML file.
    #[arg(long, env = "MLFLOW_GATEWAY_CONFIG")]
    config_path: PathBuf,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Start(args) => start(args),
        Command::Validate(args) => validate(&args.config_path),
    }
}

fn validate(path: &Path) -> ExitCode {
    match config::load_file(path, &LoadOptions::from_process()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: valid ({} endpoints, {} routes)",
                path.display(),
                loaded.config.endpoints.len(),
                loaded.config.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for issue in &errors.0 {
                eprintln!("error: {issue}");
            }
            eprintln!("{}: invalid ({} problems)", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// Binds the listening socket with our backlog (std's `TcpListener::bind` fixes it at 128).
fn listen(host: &str, port: u16, backlog: i32) -> std::io::Result<TcpListener> {
    let address = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the host resolves to no address",
        )
    })?;
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

fn start(args: StartArgs) -> ExitCode {
    let mut settings = match Settings::load(args.settings.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: invalid server settings: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(host) = args.host {
        settings.host = host;
    }
    if let Some(port) = args.port {
        settings.port = port;
    }
    if let Some(workers) = args.workers {
        settings.workers = workers;
    }
    if let Err(err) = settings.check() {
        eprintln!("error: invalid server settings: {err}");
        return ExitCode::from(2);
    }
    let _log_guard = switchyard::logging::init(&settings.log);
    // Every stream holds two sockets; the common soft limit of 1024 would cap a gateway at
    // about 500 streams, so take what the hard limit allows.
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!("cannot raise the open-file limit: {err}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    // Past the descriptor limit `accept` fails in a loop and no new client is served, not even
    // `/health`; a cap below it makes the listener wait for a free slot instead.
    match settings.connection_cap(open_files) {
        Ok(cap) => {
            tracing::info!(
                open_files,
                max_connections_per_worker = cap,
                "connection cap"
            );
            settings.max_connections_per_worker = cap;
        }
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    }

    let text = match std::fs::read_to_string(&args.config_path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: cannot read {}: {err}", args.config_path.display());
            return ExitCode::from(2);
        }
    };
    let loaded = match config::load_str(&text, &LoadOptions::from_process()) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for issue in &errors.0 {
                eprintln!("error: {issue}");
            }
            eprintln!(
                "error: invalid gateway configuration in {}",
                args.config_path.display()
            );
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("config: {warning}");
    }

    let listener = match listen(&settings.host, settings.port, settings.listen_backlog) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "error: cannot listen on {}:{}: {err}",
                settings.host, settings.port
            );
            return ExitCode::from(1);
        }
    };
    let startup = Startup {
        config_path: args.config_path,
        config_text: text,
        config: loaded.config,
    };
    match actix_rt::System::new().block_on(server::run(settings, startup, listener)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_memory_is_committed_on_demand_from_before_main() {
        // SAFETY: reads an integer option.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT) };
        assert_eq!(value, 0);
    }
}
