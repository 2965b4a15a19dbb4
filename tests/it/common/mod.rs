//! Test harness: starts the real `switchyard` binary on port 0 with a config file in a temporary
//! directory, captures its logs, and offers small HTTP helpers. Every address is 127.0.0.1.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

pub struct Gateway {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    logs: Arc<Mutex<String>>,
}

impl Gateway {
    /// Starts the gateway on `yaml` (written to `<tmp>/gateway.yaml`) with 2 workers.
    pub fn start(yaml: &str) -> Gateway {
        Self::start_with(yaml, &[], &[])
    }

    pub fn start_with(yaml: &str, args: &[&str], envs: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("gateway.yaml");
        std::fs::write(&config_path, yaml).expect("write config");
        Self::spawn(dir, config_path, args, envs)
    }

    /// Like [`Gateway::start_with`], with the process's open-file limit (soft and hard) set to
    /// `open_files`, so the gateway cannot raise it.
    pub fn start_with_open_files(
        yaml: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        open_files: u64,
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("gateway.yaml");
        std::fs::write(&config_path, yaml).expect("write config");
        Self::spawn_limited(dir, config_path, args, envs, Some(open_files))
    }

    /// Starts on an existing path inside `dir` (for symlink layouts).
    pub fn spawn(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Gateway {
        Self::spawn_limited(dir, config_path, args, envs, None)
    }

    fn spawn_limited(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        args: &[&str],
        envs: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Gateway {
        let mut command = Command::new(BIN);
        if let Some(limit) = open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command
            .arg("start")
            .arg("--config-path")
            .arg(&config_path)
            .args(["--port", "0"])
            .args(if args.contains(&"--workers") {
                &[][..]
            } else {
                &["--workers", "2"][..]
            })
            .args(args)
            .env("SWITCHYARD_LOG__LEVEL", "info,switchyard_actors=debug")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn switchyard");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(url) = line.trim().strip_prefix("Switchyard listening on ") {
                    let _ = tx.send(url.to_owned());
                }
                line.clear();
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start; logs:\n{}", logs.lock().unwrap());
            }
        };
        Gateway {
            child,
            base,
            dir,
            config_path,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces the config the way editors do: write a temporary file, rename it over the original.
    pub fn save_config(&self, yaml: &str) {
        write_atomically(&self.config_path, yaml);
    }

    /// Waits for a log line containing `needle` (bounded).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends a signal by name (`TERM`, `HUP`) with the system `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A client with a generous timeout (tests bound their own waits).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// Response status, headers and body parsed as JSON (Null when the body is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

async fn finish(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body().limit(64 * 1024 * 1024).await.expect("body");
    let text = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

pub async fn get(url: &str) -> Reply {
    let response = client().get(url).send().await.expect("GET");
    finish(response).await
}

pub async fn post_json(url: &str, body: &Value) -> Reply {
    let response = client().post(url).send_json(body).await.expect("POST");
    finish(response).await
}

pub async fn post_raw(url: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = client().post(url);
    if let Some(content_type) = content_type {
        request = request.insert_header(("content-type", content_type));
    }
    let response = request.send_body(body).await.expect("POST");
    finish(response).await
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Polls `check` every 25 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Reads the whole body of a child's output pipe (used by CLI tests).
pub fn read_all(mut reader: impl Read) -> String {
    let mut s = String::new();
    let _ = reader.read_to_string(&mut s);
    s
}

/// A mock-provider endpoint entry.
pub fn mock_endpoint(name: &str, endpoint_type: &str, config: &str) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: {endpoint_type}\n    model:\n      provider: mock\n      name: model-{name}\n      config: {{{config}}}\n"
    )
}
pub mod upstream;
