"""Session fixtures for the real-client suite: one Switchyard gateway for all tests.

This module owns the gateway process. It writes a mock-only endpoint file (no network, no keys),
starts the binary named by ``SWITCHYARD_BIN`` with ``--port 0``, reads the port from the single
``Switchyard listening on http://127.0.0.1:PORT`` line on stdout, and stops the process at the end.
It also owns the client fixtures (MLflow deployments client, OpenAI SDK) and the constants the test
modules check responses against. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

# Keep every client bounded and loopback-only, whatever the caller's environment says.
# The MLflow client otherwise retries 5xx with exponential backoff for minutes.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "20"
os.environ["MLFLOW_DEPLOYMENT_PREDICT_TIMEOUT"] = "20"
os.environ["MLFLOW_DEPLOYMENT_CLIENT_HTTP_REQUEST_TIMEOUT"] = "20"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_proxy, None)

STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0
LISTENING_RE = re.compile(r"^Switchyard listening on (http://127\.0\.0\.1:(\d+))\s*$")

# What the endpoint file below configures; the tests compare responses against these.
EMBEDDING_DIMS = 12
STREAM_CHUNKS = 5
ROUTE = "chat-split"
ROUTE_MODELS = {"mock-chat", "mock-chat-b"}  # the model names behind the route's destinations
LIMIT_CALLS = 1000  # high enough that the suite never hits it
# name -> (endpoint_type, model name), in config order (the list API keeps that order).
ENDPOINTS = {
    "chat": ("llm/v1/chat", "mock-chat"),
    "chat-b": ("llm/v1/chat", "mock-chat-b"),
    "chat-stream": ("llm/v1/chat", "mock-chat-stream"),
    "completions": ("llm/v1/completions", "mock-completions"),
    "embeddings": ("llm/v1/embeddings", "mock-embeddings"),
    "chat-limited": ("llm/v1/chat", "mock-chat"),
}

GATEWAY_CONFIG = f"""\
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      name: mock-chat
  - name: chat-b
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      name: mock-chat-b
  - name: chat-stream
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      name: mock-chat-stream
      config:
        chunks: {STREAM_CHUNKS}
  - name: completions
    endpoint_type: llm/v1/completions
    model:
      provider: mock
      name: mock-completions
      config:
        chunks: {STREAM_CHUNKS}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: mock
      name: mock-embeddings
      config:
        embedding_dims: {EMBEDDING_DIMS}
  - name: chat-limited
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      name: mock-chat
    limit:
      renewal_period: minute
      calls: {LIMIT_CALLS}
routes:
  - name: {ROUTE}
    task_type: llm/v1/chat
    destinations:
      - name: chat
        traffic_percentage: 50
      - name: chat-b
        traffic_percentage: 50
"""

_gateway_log: Path | None = None


class Gateway:
    """A running gateway: its base URL, process and stderr log."""

    def __init__(self, base_url: str, process: subprocess.Popen, log_path: Path):
        self.base_url = base_url
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no gateway log>"
        return "\n".join(text.splitlines()[-lines:])


def _child_env() -> dict[str, str]:
    """The caller's environment minus anything that could reconfigure the gateway."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SWITCHYARD_", "MLFLOW_GATEWAY_"))
    }


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    global _gateway_log
    binary = os.environ.get("SWITCHYARD_BIN")
    if not binary:
        pytest.fail(
            "SWITCHYARD_BIN is not set: point it at the switchyard binary "
            "(cargo nextest run / cargo test --test it real_clients sets it)",
            pytrace=False,
        )
    if not os.access(binary, os.X_OK):
        pytest.fail(f"SWITCHYARD_BIN={binary!r} is not an executable file", pytrace=False)

    workdir = tmp_path_factory.mktemp("gateway")
    config_path = workdir / "gateway.yaml"
    config_path.write_text(GATEWAY_CONFIG)
    log_path = workdir / "gateway.stderr.log"
    _gateway_log = log_path

    with open(log_path, "wb") as stderr:
        process = subprocess.Popen(
            [binary, "start", "--config-path", str(config_path),
             "--host", "127.0.0.1", "--port", "0", "--workers", "2"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(),
            text=True,
        )

    # Read stdout on a thread so the wait is bounded, and keep draining it afterwards so the
    # gateway can never block on a full pipe.
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="switchyard-stdout", daemon=True).start()

    gw = Gateway("", process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    seen: list[str] = []
    base_url = None
    while base_url is None:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.0))
        except queue.Empty:
            _stop(process)
            pytest.fail(
                f"gateway printed no 'Switchyard listening on' line within {STARTUP_TIMEOUT_S:.0f} s; "
                f"stdout so far: {seen!r}\nstderr tail:\n{gw.log_tail()}",
                pytrace=False,
            )
        if line is None:
            code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
            pytest.fail(
                f"gateway exited with status {code} before listening; stdout: {seen!r}\n"
                f"stderr tail:\n{gw.log_tail()}",
                pytrace=False,
            )
        seen.append(line)
        match = LISTENING_RE.match(line)
        if match:
            base_url = match.group(1)
        else:
            # The contract is exactly one line on stdout (logs go to stderr): anything else is a bug.
            _stop(process)
            pytest.fail(f"unexpected stdout line before the listening line: {line!r}", pytrace=False)

    gw.base_url = base_url
    try:
        yield gw
    finally:
        crashed = process.poll()
        _stop(process)
        if crashed is not None:
            pytest.fail(
                f"gateway died during the session (exit status {crashed})\n"
                f"stderr tail:\n{gw.log_tail()}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def base_url(gateway: Gateway) -> str:
    return gateway.base_url


@pytest.fixture(scope="session")
def deploy_client(base_url: str):
    from mlflow.deployments import get_deploy_client

    return get_deploy_client(base_url)


@pytest.fixture(scope="session")
def openai_client(base_url: str):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=20.0)
    yield client
    client.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On failure, show what the gateway logged: most failures are explained there."""
    if exitstatus != 0 and _gateway_log is not None and _gateway_log.exists():
        text = _gateway_log.read_text(errors="replace").splitlines()
        terminalreporter.section("switchyard stderr (last 60 lines)")
        terminalreporter.write_line("\n".join(text[-60:]) or "<empty>")
