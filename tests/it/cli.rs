//! The command line: `validate` reports every problem with its path, `start` refuses an invalid
//! file or a missing key variable before listening, and starts quickly on a good one.

use std::process::Command;
use std::time::Instant;

use crate::common::*;

fn validate(yaml: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut command = Command::new(BIN);
    command.arg("validate").arg("--config-path").arg(&path);
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_bundled_example() {
    let output = Command::new(BIN)
        .args(["validate", "--config-path", "config/gateway.yaml"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid (5 endpoints, 1 routes)"));
}

#[test]
fn validate_prints_every_problem_with_its_path() {
    let yaml = "endpoints:\n  - name: ok\n    endpoint_type: llm/v1/chat\n    model: {provider: mock}\n  - name: bad name\n    endpoint_type: llm/v1/chat\n    model: {provider: mock}\n  - name: c\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      config: {openai_api_key: $SWITCHYARD_CLI_TEST_MISSING}\n";
    let (code, _, stderr) = validate(yaml, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("endpoints[1].name"), "{stderr}");
    assert!(
        stderr.contains("endpoints[2].model.config.openai_api_key"),
        "{stderr}"
    );
    assert!(stderr.contains("SWITCHYARD_CLI_TEST_MISSING"), "{stderr}");
}

#[test]
fn validate_resolves_variables_like_start_does() {
    let yaml = "endpoints:\n  - name: c\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      config: {openai_api_key: $SWITCHYARD_CLI_TEST_KEY}\n";
    let (code, stdout, stderr) = validate(yaml, &[("SWITCHYARD_CLI_TEST_KEY", "sk-test")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid"));
    assert!(!stdout.contains("sk-test") && !stderr.contains("sk-test"));
}

#[test]
fn start_refuses_a_missing_variable_naming_it_and_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "endpoints:\n  - name: needs-key\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      config: {openai_api_key: $SWITCHYARD_CLI_TEST_MISSING}\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("start")
        .arg("--config-path")
        .arg(&path)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SWITCHYARD_CLI_TEST_MISSING"), "{stderr}");
    assert!(stderr.contains("endpoints[0]"), "{stderr}");
}

#[test]
fn config_path_falls_back_to_the_mlflow_variable() {
    let output = Command::new(BIN)
        .arg("validate")
        .env("MLFLOW_GATEWAY_CONFIG", "config/legacy-routes.yaml")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid (3 endpoints, 0 routes)"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(BIN)
        .args([
            "start",
            "--config-path",
            "config/gateway.yaml",
            "--port",
            &port,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
}

#[actix_rt::test]
async fn starts_and_answers_health() {
    let started = Instant::now();
    let gw = Gateway::start(&std::fs::read_to_string("config/gateway.yaml").unwrap());
    let reply = get(&gw.url("/health")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "OK");
    // Reported, not asserted: timing belongs to benches/ (the README quotes the measured figure).
    eprintln!("startup to healthy: {:?}", started.elapsed());
}

/// A key field that names a missing file or a directory (under `/` or `~/`) is a problem `validate` and `start` report with the field's path and the endpoint; it is never
/// sent as the key. `~/` is the HOME directory, and whitespace around `$VAR` is trimmed.
#[test]
fn a_mistyped_key_file_path_is_refused_not_sent_as_the_key() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("keys")).unwrap();
    std::fs::write(home.path().join("keys/openai.txt"), "sk-from-home\n").unwrap();
    let home_dir = home.path().to_str().unwrap();
    let endpoint = |name: &str, key: &str| {
        format!("  - name: {name}\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      config: {{openai_api_key: \"{key}\"}}\n")
    };
    let bad = format!(
        "endpoints:\n{}{}{}",
        endpoint("typo", "/run/secrets/openai-key-typo"),
        endpoint("dir", home_dir),
        endpoint("home-typo", "~/keys/openai-typo.txt"),
    );
    let (code, _, stderr) = validate(&bad, &[("HOME", home_dir)]);
    assert_ne!(code, 0, "{stderr}");
    for expected in [
        "endpoints[0].model.config.openai_api_key: the API key file '/run/secrets/openai-key-typo' does not exist (needed by endpoint 'typo')",
        "endpoints[1].model.config.openai_api_key: the API key file",
        "is a directory, not a file (needed by endpoint 'dir')",
        "endpoints[2].model.config.openai_api_key: the API key file '~/keys/openai-typo.txt'",
        "does not exist (needed by endpoint 'home-typo')",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    let good = format!(
        "endpoints:\n{}{}",
        endpoint("home", "~/keys/openai.txt"),
        endpoint("spaced", " $SWITCHYARD_CLI_TEST_KEY "),
    );
    let (code, stdout, stderr) = validate(
        &good,
        &[("HOME", home_dir), ("SWITCHYARD_CLI_TEST_KEY", "sk-test")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid (2 endpoints"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "endpoints:\n{}",
            endpoint("typo", "/run/secrets/openai-key-typo")
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("start")
        .arg("--config-path")
        .arg(&path)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("'/run/secrets/openai-key-typo' does not exist (needed by endpoint 'typo')"),
        "{stderr}"
    );
}

// ---- Absurd worker counts and connection caps (issue 17, defect 10 and 3) ----

/// `start` with these arguments must exit with an error naming the problem, before listening.
fn start_refuses(args: &[&str], envs: &[(&str, &str)], expected: &str) {
    let mut command = Command::new(BIN);
    command
        .args([
            "start",
            "--config-path",
            "config/gateway.yaml",
            "--port",
            "0",
        ])
        .args(args)
        .env_remove("RUST_LOG");
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a gateway that starts instead of refusing is stopped, and the test fails.
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = read_all(child.stderr.take().unwrap());
    let stdout = read_all(child.stdout.take().unwrap());
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stdout.contains("listening"), "{args:?}");
}

#[test]
fn an_absurd_worker_count_is_a_clean_error_not_a_panic() {
    // actix-server panics above 512 workers ("Workers must not exceed 512").
    for workers in ["1000", "513", "0"] {
        start_refuses(
            &["--workers", workers],
            &[],
            "workers must be between 1 and 512",
        );
    }
    start_refuses(
        &[],
        &[("SWITCHYARD_WORKERS", "100000")],
        "workers must be between 1 and 512",
    );
}

#[test]
fn a_connection_cap_above_the_open_file_limit_is_refused() {
    // The test process's limit is at most the hard limit the gateway raises to; a cap of
    // 100 million connections per worker is above any of them.
    start_refuses(
        &["--workers", "2"],
        &[("SWITCHYARD_MAX_CONNECTIONS_PER_WORKER", "100000000")],
        "max_connections_per_worker = 100000000 is more than the open-file limit",
    );
}
