#!/usr/bin/env python3
"""CPU per request of meshguard's JSON body check (issue 5): a 1 KiB JSON POST, three setups.

    .venv/bin/python bench/validate_body.py [--rounds 5] [--seconds 5]

- `baseline`: Envoy, no meshguard.
- `wasm-noop` (when bench/noop is built, as `make bench` does): a wasm filter that does nothing,
  the floor of any wasm filter.
- `mg-route`: meshguard with the route `POST /api/items` and no `request` section (the body
  streams through unchecked).
- `mg-body`: the same route with `request.body_schema` (bench/envoycfg.py ITEM_SCHEMA,
  `additionalProperties: false`), `content_types` and `max_body_bytes`: the body is buffered,
  parsed within the JSON limits and validated.

Each Envoy runs `--concurrency 1` pinned to CPU 0 (taskset), wrk one thread pinned to CPU 1, with
the POST script bench/wrk_requests.lua; the setups run interleaved, each round starting one
setup later (A B C, B C A, ...), a fresh Envoy per round. The figure is the Envoy process's utime+stime (/proc) over the requests wrk
completed; "body check" is mg-body minus mg-route of the same round, "added" minus baseline.
Every setup answers with a direct_response after Envoy's buffer filter (see envoycfg.py). Before
measuring, mg-body must refuse a body against the schema (400), or the run stops.
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
NOOP_WASM = REPO / "target" / "bench-noop" / "wasm32-wasip1" / "release" / "meshguard_bench_noop.wasm"


def policy(with_body: bool) -> dict:
    route: dict = {"name": "items-write", "match": {"methods": ["POST"], "path": PATH}}
    if with_body:
        route["request"] = {
            "max_body_bytes": 65536,
            "content_types": ["application/json"],
            "body_schema": envoycfg.ITEM_SCHEMA,
        }
    return {"mode": "enforce", "unmatched": "deny", "routes": [route]}


def bootstrap(setup: str, wasm: str, wasm_b: str | None = None) -> dict:
    if setup == "mg-body-b":
        return envoycfg._bootstrap([envoycfg.wasm_filter(str(wasm_b), policy(True))], envoycfg.direct_response(), [])
    if setup == "baseline":
        filters = []
    elif setup == "wasm-noop":
        filters = [envoycfg.wasm_filter(str(NOOP_WASM), None, name="noop")]
    else:
        filters = [envoycfg.wasm_filter(wasm, policy(setup == "mg-body"))]
    return envoycfg._bootstrap(filters, envoycfg.direct_response(), [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_micro_args(ap, REPO, "another module, measured as mg-body-b (compare two builds)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="meshguard-bench-body-"))
    body_file = workdir / "body.json"
    body = envoycfg.body_1k()
    body_file.write_bytes(body)
    setups = ["baseline", *(["wasm-noop"] if NOOP_WASM.is_file() else []), "mg-route", "mg-body"]
    if args.wasm_b:
        setups.append("mg-body-b")
    cpu: dict[str, list[float]] = {s: [] for s in setups}
    rps: dict[str, list[float]] = {s: [] for s in setups}
    procs = Procs()
    try:
        bootstrap_of = lambda setup: bootstrap(setup, args.wasm, args.wasm_b)  # noqa: E731
        for rnd, setup, envoy in interleaved_envoys(args, setups, workdir, procs, bootstrap_of):
            headers = {"content-type": "application/json"}
            envoy.wait_first_ok("POST", PATH, headers, body)
            if setup.startswith("mg-body"):
                bad = json.dumps({**json.loads(body), "quantity": "3"}).encode()
                status, _ = http_request(envoy.port, "POST", PATH, headers, bad)
                if status != 400:
                    raise SystemExit(f"mg-body let a body against the schema through ({status})")
            us, res = measure_cpu(procs, envoy, args, setup, path=PATH, method="POST", body_file=body_file)
            cpu[setup].append(us)
            rps[setup].append(res["requests"] / (res["duration_us"] / 1e6))
            print(f"round {rnd + 1} {setup:9s} {cpu[setup][-1]:7.1f} us/req {rps[setup][-1]:8.0f} req/s",
                  flush=True)
    finally:
        procs.stop_all()

    check = paired(cpu, "mg-body", "mg-route")
    added = paired(cpu, "mg-body", "baseline")
    route = paired(cpu, "mg-route", "baseline")
    print_medians(f"1 KiB JSON POST, {args.rounds} rounds x {args.seconds} s, {args.connections} connections",
                  cpu, 9)
    print(f"  meshguard route, no body check, over baseline: {statistics.median(route):6.1f} us/req")
    if "wasm-noop" in cpu:
        floor = paired(cpu, "wasm-noop", "baseline")
        print(f"  wasm-noop over baseline (the wasm floor):      {statistics.median(floor):6.1f} us/req")
    print(f"  body check (mg-body - mg-route, paired):       {statistics.median(check):6.1f} us/req"
          f"  (rounds: {rounds_text(check)})")
    print(f"  mg-body over baseline (paired):                {statistics.median(added):6.1f} us/req")
    if args.wasm_b:
        diff = paired(cpu, "mg-body", "mg-body-b")
        print(f"  mg-body - mg-body-b (--wasm - --wasm-b, paired): {statistics.median(diff):6.1f} us/req")
    print(f"  target <= 15 us for the body check: {'met' if statistics.median(check) <= 15 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
