#!/usr/bin/env python3
"""meshguard demo: an echo upstream and Envoy running envoy/demo.yaml with the built module.

    make run                       # or: .venv/bin/python tools/demo.py
    tools/demo.py --check          # start, run every printed curl line, check the answers, stop

Listener 127.0.0.1:10000, admin 127.0.0.1:9901, echo upstream 127.0.0.1:10001 (each can be changed;
0 picks a free port). At start it mints two demo tokens (EdDSA, valid one hour) with the DEMO-ONLY
key tools/demo-only-jwt-key.pem and prints curl lines that use them: routing, a token with scopes,
a checked JSON body, a per-user rate limit, the counters. meshguard's log lines (audit records
included) are copied to this terminal. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402

# The demo issuer (envoy/demo.yaml, jwt_providers.demo). The key is published on purpose: it
# proves nothing to anyone and must never be trusted outside this demo.
DEMO_KEY = ROOT / "tools" / "demo-only-jwt-key.pem"
DEMO_KID = "demo-ed25519-1"
DEMO_ISSUER = "https://demo.meshguard.local"
DEMO_AUDIENCE = "orders-api"
TOKEN_LIFETIME_S = 3600


def mint_token(scope: str, sub: str = "alice", lifetime_s: int = TOKEN_LIFETIME_S) -> str:
    """A demo token (EdDSA, signed with the demo-only key) for the demo issuer and audience."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(DEMO_KEY.read_bytes(), password=None)
    now = int(time.time())
    claims = {"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": sub, "scope": scope,
              "iat": now, "exp": now + lifetime_s}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": DEMO_KID})


@dataclass
class Example:
    """One request of the demo: what it shows, how to send it, the status it gets.
    `token` names a shell variable ($TOKEN) set by the export lines. With `repeat`, the line is
    a loop printing each status; `expect` is the last one's. `reason`: the problem's reason."""

    what: str
    method: str
    path: str
    expect: int
    reason: str | None = None
    token: str | None = None
    body: str | None = None
    repeat: int = 1
    headers: dict[str, str] = field(default_factory=dict)

    def curl(self, port: int) -> str:
        parts = ["curl"]
        parts += ["-s", "-o", "/dev/null", "-w", "'%{http_code} '"] if self.repeat > 1 else ["-i"]
        parts.append("--path-as-is")
        if self.method != ("POST" if self.body is not None else "GET"):
            parts += ["-X", self.method]
        parts.append(shlex.quote(f"http://127.0.0.1:{port}{self.path}"))
        if self.token:
            parts += ["-H", f'"authorization: Bearer ${self.token}"']
        for k, v in self.headers.items():
            parts += ["-H", shlex.quote(f"{k}: {v}")]
        if self.body is not None:
            parts += ["-H", "'content-type: application/json'", "-d", shlex.quote(self.body)]
        line = " ".join(parts)
        if self.repeat > 1:
            line = f"for i in $(seq {self.repeat}); do {line}; done; echo"
        return line


# Routing (the first four routes of envoy/demo.yaml). Paths are sent as is (curl --path-as-is).
ROUTING = [
    Example("allowed: the body shows what reached the backend", "GET", "/public/hello", 200),
    Example("allowed by the /users/{id} template", "GET", "/users/42", 200),
    Example("no route: application/problem+json, reason route_not_found", "GET", "/nowhere", 404, "route_not_found"),
    Example("path matches, method does not: 405 with an Allow header", "POST", "/users/42", 405, "method_not_allowed"),
    Example("dot segments are resolved before matching: not /public/", "GET", "/public/../admin", 404,
            "route_not_found"),
    Example("an encoded slash is refused: path_invalid", "GET", "/users/a%2Fb", 400, "path_invalid"),
]

GOOD_ORDER = '{"item": "book", "quantity": 2}'

# The /api/orders routes: a token with scopes, a checked body, a rate limit.
ORDERS = [
    Example("token with orders:read: allowed; the backend gets x-user: alice, not the token",
            "GET", "/api/orders/42", 200, token="TOKEN"),
    Example("the same without a token: 401 jwt_missing, with WWW-Authenticate",
            "GET", "/api/orders/42", 401, "jwt_missing"),
    Example("an order id that is not a number: 400 schema_violation (path parameter)",
            "GET", "/api/orders/42abc", 400, "schema_violation", token="TOKEN"),
    Example("create an order (orders:write): the body is checked, then passed on byte for byte",
            "POST", "/api/orders", 200, token="TOKEN", body=GOOD_ORDER),
    Example("a token without orders:write: 403 jwt_insufficient_scope",
            "POST", "/api/orders", 403, "jwt_insufficient_scope", token="READONLY_TOKEN", body=GOOD_ORDER),
    Example("a bad body: 400 schema_violation naming /quantity and the keyword, not the value",
            "POST", "/api/orders", 400, "schema_violation", token="TOKEN", body='{"item": "book", "quantity": "two"}'),
    Example("a field the schema does not declare: 400 mass_assignment",
            "POST", "/api/orders", 400, "mass_assignment", token="TOKEN",
            body='{"item": "book", "quantity": 1, "price": 0}'),
    Example("5 orders a minute per user: the next ones get 429 rate_limited",
            "POST", "/api/orders", 429, token="TOKEN", body=GOOD_ORDER, repeat=6),
]

EXAMPLES = ROUTING + ORDERS


def tokens() -> dict[str, str]:
    """The shell variables the curl lines use."""
    return {"TOKEN": mint_token("orders:read orders:write"), "READONLY_TOKEN": mint_token("orders:read")}


def stats_lines(admin: int) -> list[str]:
    return [f"curl -s 'http://127.0.0.1:{admin}/stats?filter=meshguard'",
            f"curl -s http://127.0.0.1:{admin}/stats/prometheus | grep meshguard"]


def substitute(text: str, wasm: Path, listen: int, admin: int, upstream: int) -> str:
    for old, new in (
        ("@MESHGUARD_WASM@", str(wasm)),
        ("port_value: 10000", f"port_value: {listen}"),
        ("port_value: 9901", f"port_value: {admin}"),
        ("port_value: 10001", f"port_value: {upstream}"),
    ):
        if old not in text:
            raise SystemExit(f"envoy/demo.yaml no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen-port", type=int, default=10000)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--upstream-port", type=int, default=10001)
    parser.add_argument("--config", type=Path, default=ROOT / "envoy" / "demo.yaml")
    parser.add_argument("--check", action="store_true", help="run the printed curl lines, check statuses, exit")
    args = parser.parse_args()

    # Ctrl-C and SIGTERM both end the demo through the same cleanup (also when started in the
    # background, where SIGINT would otherwise be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    wasm = harness.wasm_path()
    if not harness.is_proxy_wasm_module(wasm):
        print(f"{wasm} is missing or is not a proxy-wasm module: run `make build`", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="meshguard-demo-"))
    with harness.EchoUpstream(port=args.upstream_port) as upstream:
        config = workdir / "demo.yaml"
        config.write_text(
            substitute(args.config.read_text(), wasm, args.listen_port, args.admin_port, upstream.port)
        )
        envoy = harness.Envoy(config=config, workdir=workdir)
        try:
            envoy.start()
        except harness.EnvoyError as err:
            print(err, file=sys.stderr)
            return 1
        try:
            return check(envoy) if args.check else serve(envoy)
        finally:
            envoy.stop()


def last_status(output: str) -> int | None:
    """The status a curl line printed: the last `HTTP/x NNN` line of `curl -i`, or the last of the
    codes a loop printed with -w."""
    found = re.findall(r"^HTTP/[0-9.]+ ([0-9]{3})", output, re.MULTILINE) or re.findall(r"\b([0-9]{3})\b", output)
    return int(found[-1]) if found else None


def run_line(line: str, env: dict[str, str]) -> str:
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    return proc.stdout


def send(envoy: harness.Envoy, ex: Example, env: dict[str, str]) -> tuple[int, str]:
    """Without curl: the same request through the harness client (status, body)."""
    headers = dict(ex.headers)
    if ex.token:
        headers["authorization"] = f"Bearer {env[ex.token]}"
    if ex.body is not None:
        headers["content-type"] = "application/json"
    status, text = 0, ""
    for _ in range(ex.repeat):
        body = ex.body.encode() if ex.body is not None else None
        resp = envoy.request(ex.method, ex.path, headers=headers, body=body)
        status, text = resp.status, resp.body.decode("utf-8", "replace")
    return status, text


def check(envoy: harness.Envoy) -> int:
    """Runs every printed curl line (through the harness client when curl is missing)."""
    env = tokens()
    use_curl = shutil.which("curl") is not None
    failures = 0
    for ex in EXAMPLES:
        if use_curl:
            output = run_line(ex.curl(envoy.port), env)
            status = last_status(output)
        else:
            status, output = send(envoy, ex, env)
        ok = status == ex.expect and (ex.reason is None or f'"reason":"{ex.reason}"' in output)
        failures += not ok
        want = f"{ex.expect} {ex.reason}" if ex.reason else str(ex.expect)
        print(f"{'ok ' if ok else 'BAD'} {status} (want {want}) {ex.method} {ex.path}")
    counters = run_line(stats_lines(envoy.admin_port)[0], env) if use_curl else envoy.admin(
        "/stats?filter=meshguard")[1]
    ok = "meshguard.route.create-order.deny" in counters
    failures += not ok
    print(f"{'ok ' if ok else 'BAD'} counters list meshguard.route.create-order.deny")
    total = len(EXAMPLES) + 1
    print(f"demo check ({'curl' if use_curl else 'harness client'}): {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def serve(envoy: harness.Envoy) -> int:
    port, admin = envoy.port, envoy.admin_port
    env = tokens()
    print(f"\nmeshguard demo: Envoy on http://127.0.0.1:{port}, admin on http://127.0.0.1:{admin}")
    print(f"module {harness.wasm_path()}, Envoy log {envoy.log_path}\n")
    print("Routing:\n")
    for ex in ROUTING:
        print(f"  # {ex.what}\n  {ex.curl(port)}")
    print("\n/api/orders: JWT with scopes, a checked JSON body, a rate limit. First set the demo tokens")
    print(f"(sub alice, valid {TOKEN_LIFETIME_S // 60} minutes, signed with the DEMO-ONLY key {DEMO_KEY.relative_to(ROOT)}):\n")
    for name, value in env.items():
        print(f"  export {name}={value}")
    print()
    for ex in ORDERS:
        print(f"  # {ex.what}\n  {ex.curl(port)}")
    print("\n  # meshguard counters (per route and decision, per reason, per rate limit)")
    for line in stats_lines(admin):
        print(f"  {line}")
    print("\nmeshguard log lines follow. Ctrl-C stops.\n", flush=True)
    try:
        with open(envoy.log_path, errors="replace") as log:
            pending = ""
            while envoy.running:
                pending += log.read()
                # Only whole lines: the last one may still be being written.
                *lines, pending = pending.split("\n")
                for line in lines:
                    if "[wasm]" in line or "[critical]" in line or "[error]" in line:
                        print(line, flush=True)
                time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    print(f"envoy exited with {envoy.proc.returncode if envoy.proc else '?'}:\n{envoy.log_tail()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
