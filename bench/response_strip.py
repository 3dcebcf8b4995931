#!/usr/bin/env python3
"""CPU per request of meshguard's response field stripping (issue 13): a 4 KiB JSON answer.

    .venv/bin/python bench/response_strip.py [--rounds 5] [--seconds 5] [--wasm-b OTHER.wasm]

- `baseline`: Envoy, no meshguard.
- `mg-route`: meshguard with the route `GET /api/items` and no response rules (the answer passes
  untouched; no response host call, no body buffering).
- `mg-strip`: the same route with three `response.strip_fields` (`/password`, `/ssn`,
  `/items/*/card`): the answer is buffered, walked by the strict JSON reader and 12 members are
  removed (content-length dropped, headers not held).
- `mg-route-b` (with `--wasm-b`): `mg-route` with another module, e.g. the module built from main
  before the response work, to show a route without response rules pays nothing new.

Each Envoy answers with a direct_response of the 4 KiB document (content-type application/json);
the direct response goes through meshguard's response callbacks as an upstream answer would.
Envoy runs `--concurrency 1` pinned to CPU 0, wrk one thread on CPU 1; setups interleave, each
round starting one setup later, a fresh Envoy per round. The figure is the Envoy process's CPU
(utime+stime from /proc) over the requests wrk completed. Before measuring, mg-strip must answer
without the stripped fields, or the run stops.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import envoycfg
from load import Procs, add_micro_args, http_request, interleaved_envoys, measure_cpu, paired, print_medians, rounds_text

REPO = Path(__file__).resolve().parents[1]
PATH = envoycfg.API_PATH
STRIP = ["/password", "/ssn", "/items/*/card"]


def document_4k() -> bytes:
    """A user record with a password, an SSN and ten cards, padded to exactly 4096 bytes."""
    doc = {
        "id": 4242,
        "name": "Benchmark user",
        "email": "bench@example.com",
        "password": "$2b$12$abcdefghijklmnopqrstuv",
        "ssn": "078-05-1120",
        "items": [{"sku": f"SKU-{i:04d}", "qty": i, "card": f"4111-1111-1111-{i:04d}", "note": "x" * 40}
                  for i in range(10)],
        "bio": "",
    }
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["bio"] = ("lorem ipsum dolor sit amet " * 200)[: 4096 - base]
    out = json.dumps(doc, separators=(",", ":")).encode()
    assert len(out) == 4096, len(out)
    return out


def policy(strip: bool) -> dict:
    route: dict = {"name": "items-read", "match": {"methods": ["GET"], "path": PATH}}
    if strip:
        route["response"] = {"strip_fields": STRIP}
    return {"mode": "enforce", "unmatched": "deny", "routes": [route]}


def bootstrap(setup: str, wasm: str, wasm_b: str | None, body: bytes) -> dict:
    action = {
        "direct_response": {"status": 200, "body": {"inline_string": body.decode()}},
        "response_headers_to_add": [
            {"header": {"key": "content-type", "value": "application/json"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        ],
    }
    if setup == "baseline":
        filters = []
    elif setup == "mg-route-b":
        filters = [envoycfg.wasm_filter(str(wasm_b), policy(False))]
    else:
        filters = [envoycfg.wasm_filter(wasm, policy(setup == "mg-strip"))]
    return envoycfg._bootstrap(filters, action, [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_micro_args(ap, REPO, "another module, measured as mg-route-b")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="meshguard-bench-resp-"))
    body = document_4k()
    setups = ["baseline", "mg-route", "mg-strip", *(["mg-route-b"] if args.wasm_b else [])]
    cpu: dict[str, list[float]] = {s: [] for s in setups}
    procs = Procs()
    try:
        bootstrap_of = lambda setup: bootstrap(setup, args.wasm, args.wasm_b, body)  # noqa: E731
        for rnd, setup, envoy in interleaved_envoys(args, setups, workdir, procs, bootstrap_of):
            envoy.wait_first_ok("GET", PATH, {}, None)
            status, got = http_request(envoy.port, "GET", PATH)
            stripped = b'"password"' not in got and b'"card"' not in got and b'"ssn"' not in got
            if status != 200 or stripped != (setup == "mg-strip"):
                raise SystemExit(f"{setup}: unexpected answer {status} {got[:200]!r}")
            us, _ = measure_cpu(procs, envoy, args, setup, path=PATH, method="GET")
            cpu[setup].append(us)
            print(f"round {rnd + 1} {setup:10s} {cpu[setup][-1]:7.1f} us/req", flush=True)
    finally:
        procs.stop_all()

    strip = paired(cpu, "mg-strip", "mg-route")
    route = paired(cpu, "mg-route", "baseline")
    print_medians(f"4 KiB JSON answer, {args.rounds} rounds x {args.seconds} s, {args.connections} connections",
                  cpu, 10)
    print(f"  meshguard route without response rules, over baseline: {statistics.median(route):6.1f} us/req")
    print(f"  three strip_fields (mg-strip - mg-route, paired):      {statistics.median(strip):6.1f} us/req"
          f"  (rounds: {rounds_text(strip)})")
    if args.wasm_b:
        diff = paired(cpu, "mg-route", "mg-route-b")
        print(f"  mg-route - mg-route-b (--wasm - --wasm-b, paired):      {statistics.median(diff):6.1f} us/req"
              f"  (rounds: {rounds_text(diff)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
