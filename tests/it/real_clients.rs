//! Runs the real-client suite (`tests/python`: MLflow's deployments client, the OpenAI SDK,
//! LangChain) against the `switchyard` binary built for this test run, so that
//! `cargo nextest run --workspace` covers it.
//!
//! This file owns the Python environment: a venv at `<target dir>/python-venv`, created with
//! `python3 -m venv` and filled from `tests/python/requirements.txt`. It is reinstalled only when
//! that file's content changes (a copy is kept in the venv as a marker), so warm runs cost nothing
//! but pytest itself. Installing and testing are both time-bounded. A missing `python3`, `venv`
//! module or `pip` fails the test with a message saying what to install; it never skips.
//!
//! Knobs (environment): `SWITCHYARD_PYTHON` picks the interpreter used to create the venv
//! (default `python3`); `SWITCHYARD_PYTEST_ARGS` appends arguments to pytest (e.g. `-k openai -x`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// pip's per-connection timeout, in seconds, and its retry count per download.
const PIP_SOCKET_TIMEOUT_SECS: &str = "60";
const PIP_RETRIES: &str = "2";
/// The whole install (venv creation plus pip), cold.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The whole pytest run.
const PYTEST_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Oldest Python the pinned requirements support.
const MIN_PYTHON: (u32, u32) = (3, 10);
/// Name of the marker inside the venv: a copy of the requirements it was built from.
const MARKER: &str = "switchyard-requirements.txt";

#[test]
fn python_real_clients() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements_path = root.join("tests/python/requirements.txt");
    let requirements = fs::read_to_string(&requirements_path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", requirements_path.display()));
    let target = target_dir();
    let venv = target.join("python-venv");

    let python = {
        let _lock = DirLock::acquire(&target.join("python-venv.lock"));
        ensure_venv(&venv, &requirements_path, &requirements)
    };

    let mut pytest = Command::new(&python);
    pytest
        .args(["-m", "pytest", "-q", "tests/python"])
        .args(
            std::env::var("SWITCHYARD_PYTEST_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .current_dir(root)
        .env("SWITCHYARD_BIN", env!("CARGO_BIN_EXE_switchyard"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    eprintln!(
        "real_clients: running pytest -q tests/python with {}",
        python.display()
    );
    let started = Instant::now();
    let status = run_bounded(&mut pytest, PYTEST_TIMEOUT, "pytest");
    eprintln!(
        "real_clients: pytest finished in {:.1} s ({status})",
        started.elapsed().as_secs_f64()
    );
    match status.code() {
        Some(0) => {}
        Some(5) => panic!("pytest collected no tests in tests/python"),
        _ => panic!("the real-client suite failed ({status}); pytest's report is above"),
    }
}

/// Returns the venv's interpreter, (re)building the venv unless it was built from exactly
/// `requirements` and still runs.
fn ensure_venv(venv: &Path, requirements_path: &Path, requirements: &str) -> PathBuf {
    let python = venv_python(venv);
    let marker = venv.join(MARKER);
    if fs::read_to_string(&marker).is_ok_and(|built_from| built_from == requirements)
        && Command::new(&python)
            .args(["-c", "import pytest"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    {
        eprintln!(
            "real_clients: reusing {} (requirements unchanged)",
            venv.display()
        );
        return python;
    }

    let started = Instant::now();
    eprintln!(
        "real_clients: building {} from {}",
        venv.display(),
        requirements_path.display()
    );
    let base = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    check_base_python(&base);

    if venv.exists() {
        fs::remove_dir_all(venv)
            .unwrap_or_else(|err| panic!("cannot remove stale {}: {err}", venv.display()));
    }
    let status = run_bounded(
        Command::new(&base).arg("-m").arg("venv").arg(venv),
        INSTALL_TIMEOUT,
        "python3 -m venv",
    );
    assert!(
        status.success(),
        "`{base} -m venv {}` failed ({status}): the venv module or ensurepip is missing; \
         on Debian/Ubuntu install it with `apt-get install python3-venv`",
        venv.display()
    );
    let has_pip = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        has_pip,
        "the new venv has no pip ({} -m pip --version failed): install pip for {base} \
         (`apt-get install python3-pip python3-venv`)",
        python.display()
    );

    let remaining = INSTALL_TIMEOUT.saturating_sub(started.elapsed());
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .args([
        "--timeout",
        PIP_SOCKET_TIMEOUT_SECS,
        "--retries",
        PIP_RETRIES,
    ])
    .arg("-r")
    .arg(requirements_path);
    let status = run_bounded(&mut pip, remaining, "pip install");
    assert!(
        status.success(),
        "pip install -r {} failed ({status}); pip's output is above (is PyPI reachable?)",
        requirements_path.display()
    );

    // Written last: an interrupted install leaves no marker, so the next run starts over.
    fs::write(&marker, requirements)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", marker.display()));
    eprintln!(
        "real_clients: venv ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    python
}

/// Fails clearly when the interpreter that should create the venv is missing or too old.
fn check_base_python(base: &str) {
    let probe = "import sys; print('%d.%d' % sys.version_info[:2])";
    let output = match Command::new(base)
        .args(["-c", probe])
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "`{base}` was not found: the real-client tests need Python {}.{}+ with venv and pip \
             (Debian/Ubuntu: `apt-get install python3 python3-venv python3-pip`), \
             or SWITCHYARD_PYTHON naming an interpreter",
            MIN_PYTHON.0, MIN_PYTHON.1
        ),
        Err(err) => panic!("cannot run `{base}`: {err}"),
    };
    assert!(
        output.status.success(),
        "`{base} -c ...` failed ({})",
        output.status
    );
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let parsed = version
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    match parsed {
        Some(found) if found >= MIN_PYTHON => {}
        _ => panic!(
            "`{base}` is Python {version}; the real-client tests need {}.{} or newer \
             (set SWITCHYARD_PYTHON to a newer interpreter)",
            MIN_PYTHON.0, MIN_PYTHON.1
        ),
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Cargo's target directory: the ancestor of the test binary that holds `CACHEDIR.TAG`
/// (so `CARGO_TARGET_DIR` is honoured), else `<workspace>/target`.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_switchyard"))
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Runs `command` with inherited stdout/stderr (its output streams through), killing it after
/// `limit`.
fn run_bounded(command: &mut Command, limit: Duration, what: &str) -> ExitStatus {
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {what} ({:?}): {err}", command.get_program()));
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .try_wait()
            .unwrap_or_else(|err| panic!("waiting for {what}: {err}"))
        {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {} s and was killed",
                limit.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A cross-process lock (an exclusive directory) so concurrent test runs don't build the same
/// venv at once. A lock older than the install timeout is taken to be left by a killed run.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Self {
        let waited = Instant::now();
        loop {
            match fs::create_dir(path) {
                Ok(()) => return DirLock(path.to_path_buf()),
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                    let age = fs::metadata(path)
                        .and_then(|meta| meta.modified())
                        .ok()
                        .and_then(|modified| SystemTime::now().duration_since(modified).ok());
                    if age.is_some_and(|age| age > INSTALL_TIMEOUT) {
                        eprintln!("real_clients: removing stale lock {}", path.display());
                        let _ = fs::remove_dir(path);
                        continue;
                    }
                    assert!(
                        waited.elapsed() < INSTALL_TIMEOUT,
                        "timed out waiting for {} (another test run is installing the venv)",
                        path.display()
                    );
                    thread::sleep(Duration::from_millis(500));
                }
                Err(err) => panic!("cannot create lock {}: {err}", path.display()),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}
