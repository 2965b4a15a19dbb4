//! The gateway under test as a child process, and what `/proc` says about processes: CPU time,
//! resident memory, descriptor limits and CPU pinning.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the gateway's "listening" line and first healthy answer.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

/// A running gateway; killed when dropped.
pub struct Gateway {
    child: Child,
    pub pid: u32,
    pub port: u16,
    /// From spawning the process to its "listening" line.
    pub to_listening: Duration,
    /// From spawning the process to the first `200` from `GET /health`.
    pub to_healthy: Duration,
    /// Where its stderr (logs) goes.
    pub log_path: PathBuf,
}

/// How to start the gateway.
pub struct GatewayOptions<'a> {
    pub binary: &'a Path,
    pub config: &'a Path,
    pub workers: usize,
    /// Extra environment for the gateway (applied after the defaults, so they can be overridden).
    pub env: &'a [(String, String)],
    /// CPU list for `taskset -c` (e.g. `"0"`); `None` runs unpinned.
    pub cpus: Option<String>,
    pub log_path: PathBuf,
}

impl Gateway {
    pub fn start(options: &GatewayOptions<'_>) -> Result<Gateway, String> {
        // Appended to, so a restarted gateway keeps the earlier lines.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log_path)
            .map_err(|e| format!("cannot create {}: {e}", options.log_path.display()))?;
        let mut command = match &options.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(options.binary);
                command
            }
            None => Command::new(options.binary),
        };
        command
            .arg("start")
            .arg("--config-path")
            .arg(options.config)
            .args(["--host", "127.0.0.1", "--port", "0", "--workers"])
            .arg(options.workers.to_string())
            // Request logging and hot-reload polling are not what is measured.
            .env("SWITCHYARD_LOG__LEVEL", "warn")
            .env_remove("RUST_LOG")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the gateway: {e}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reads the port, then keeps draining stdout so the gateway never blocks on it.
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { return };
                if let Some(port) = line
                    .strip_prefix("Switchyard listening on http://")
                    .and_then(|address| address.rsplit(':').next())
                    .and_then(|port| port.trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send((port, Instant::now()));
                    break;
                }
            }
            for _ in lines {}
        });
        let mut gateway = Gateway {
            child,
            pid,
            port: 0,
            to_listening: Duration::ZERO,
            to_healthy: Duration::ZERO,
            log_path: options.log_path.clone(),
        };
        let (port, listening_at) = port_rx
            .recv_timeout(STARTUP_LIMIT)
            .map_err(|_| format!("the gateway did not start; see {}", gateway.log_tail()))?;
        gateway.port = port;
        gateway.to_listening = listening_at - spawned;
        let deadline = spawned + STARTUP_LIMIT;
        while !health_ok(port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "the gateway never became healthy; {}",
                    gateway.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        gateway.to_healthy = spawned.elapsed();
        Ok(gateway)
    }

    /// The last lines of the gateway's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(10).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        format!("log {}:\n{}", self.log_path.display(), tail.join("\n"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Warnings and errors the gateway logged (its level is `warn`).
    pub fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log_path)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        // SIGTERM first (graceful drain is not measured, so do not wait for it long).
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// One blocking `GET /health`; true on a `200`.
fn health_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks_per_second(),
    ))
}

/// Busy CPU time of the whole machine so far (all CPUs, `/proc/stat` minus idle and iowait).
pub fn machine_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = fields.iter().take(8).sum::<u64>() - fields.get(3)? - fields.get(4)?;
    Some(Duration::from_secs_f64(
        busy as f64 / clock_ticks_per_second(),
    ))
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), field)
}

/// Resets the peak-RSS mark (`VmHWM`) to the current RSS, so each scenario reports its own peak.
/// Needs to own the process or be root; returns false when the kernel refuses.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Raises this process's descriptor limit to at least `wanted` (children inherit it). Returns
/// the soft limit in force afterwards.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur >= wanted {
            return limit.rlim_cur;
        }
        // Raising the hard limit needs CAP_SYS_RESOURCE; try, then settle for the hard limit.
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max.max(wanted),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let capped = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// Pins every thread of this process (and so every thread it starts later) to `cpus` with
/// `taskset`; false when taskset is missing or refuses.
pub fn pin_self(cpus: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// CPUs the machine has online (not the ones this process may use: it may be pinned).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// A one-line description of this machine for the report.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = online_cpus();
    let memory_gib = kib_field("/proc/meminfo", "MemTotal")
        .map(|kib| kib as f64 / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} × {model}, {memory_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// A `Name:   123 kB` field of a `/proc` file.
fn kib_field(path: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
