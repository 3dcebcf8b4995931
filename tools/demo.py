#!/usr/bin/env python3
"""meshguard demo: an echo upstream and Envoy running envoy/demo.yaml with the built module.

    make run                       # or: .venv/bin/python tools/demo.py
    tools/demo.py --check          # start, send the sample requests, check their statuses, stop

Listener 127.0.0.1:10000, admin 127.0.0.1:9901, echo upstream 127.0.0.1:10001 (each can be changed;
0 picks a free port). meshguard's log lines (audit records included) are copied to this terminal.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402

# (method, path, expected status, what it shows). Paths are sent as is (curl --path-as-is).
SAMPLES = [
    ("GET", "/public/hello", 200, "allowed: the body shows what reached the backend"),
    ("GET", "/users/42", 200, "allowed by the /users/{id} template"),
    ("GET", "/nowhere", 404, "no route: application/problem+json, reason route_not_found"),
    ("POST", "/users/42", 405, "path matches, method does not: 405 with an Allow header"),
    ("GET", "/public/../admin", 404, "dot segments are resolved before matching: not /public/"),
    ("GET", "/users/a%2Fb", 400, "an encoded slash is refused: path_invalid"),
]


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


def curl_line(method: str, path: str, port: int) -> str:
    verb = "" if method == "GET" else f"-X {method} "
    return f"curl -i --path-as-is {verb}'http://127.0.0.1:{port}{path}'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen-port", type=int, default=10000)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--upstream-port", type=int, default=10001)
    parser.add_argument("--config", type=Path, default=ROOT / "envoy" / "demo.yaml")
    parser.add_argument("--check", action="store_true", help="send the sample requests, check statuses, exit")
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


def check(envoy: harness.Envoy) -> int:
    failures = 0
    for method, path, expected, _ in SAMPLES:
        resp = envoy.request(method, path)
        ok = resp.status == expected
        failures += not ok
        print(f"{'ok ' if ok else 'BAD'} {resp.status} (want {expected}) {method} {path}")
    print(f"demo check: {len(SAMPLES) - failures} passed, {failures} failed")
    return 1 if failures else 0


def serve(envoy: harness.Envoy) -> int:
    port, admin = envoy.port, envoy.admin_port
    print(f"\nmeshguard demo: Envoy on http://127.0.0.1:{port}, admin on http://127.0.0.1:{admin}")
    print(f"module {harness.wasm_path()}, Envoy log {envoy.log_path}\n")
    for method, path, _, what in SAMPLES:
        print(f"  # {what}\n  {curl_line(method, path, port)}")
    print(f"\n  # meshguard counters\n  curl -s 'http://127.0.0.1:{admin}/stats?filter=meshguard'")
    print(f"  curl -s http://127.0.0.1:{admin}/stats/prometheus | grep meshguard")
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
