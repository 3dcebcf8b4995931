#!/usr/bin/env python3
"""Per-sidecar cost of meshguard: module size, Envoy resident memory, start to ready (`make cost`).

Starts, round after round (A B C A B C ...), an Envoy with no filter, one with a trivial wasm filter
(bench/noop) and one with meshguard under a realistic policy (one provider with an RSA + EC + Ed25519
JWKS, a JWT route with scopes and a rate limit, a body-schema route, a peers route, an open health
route), at --concurrency 1 and 2. Per Envoy it measures the time from process start to the first
200 (start to ready: V8 compiles the module before the listener serves), then sends a few requests
on several connections and reads VmRSS. Reports medians and the cost added over the setup without
a filter. No CPU benchmark: that is `make bench`.

Only 127.0.0.1 is targeted; every process started here is ended on exit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import envoycfg
from keys import Keys
from load import Envoy, EnvoyError, Procs, http_request
from run import NOOP_WASM, REPO, Bench

SETUPS = ("no-filter", "trivial-wasm", "meshguard")


def realistic_policy(jwks: dict) -> dict:
    provider = {
        "issuer": envoycfg.ISSUER,
        "audiences": [envoycfg.AUDIENCE],
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "local_jwks": {"inline_string": json.dumps(jwks)},
    }
    limit = {"key": "jwt:sub", "requests": 100, "per_seconds": 1, "burst": 200}
    return {
        "mode": "enforce",
        "unmatched": "deny",
        "jwt_providers": {"main": provider},
        "routes": [
            {"name": "health", "match": {"methods": ["GET"], "path": "/health"}},
            {
                "name": "items-read",
                "match": {"methods": ["GET"], "prefix": "/api"},
                "jwt": {"providers": ["main"], "scopes": [envoycfg.SCOPE_READ]},
                "rate_limits": [limit],
            },
            {
                "name": "items-write",
                "match": {"methods": ["POST"], "path": envoycfg.API_PATH},
                "jwt": {"providers": ["main"], "scopes": [envoycfg.SCOPE_WRITE]},
                "request": {
                    "max_body_bytes": 65536,
                    "content_types": ["application/json"],
                    "body_schema": envoycfg.ITEM_SCHEMA,
                },
            },
            {
                "name": "internal",
                "match": {"prefix": "/internal"},
                "peers": {"require_mtls": True,
                          "allow": ["spiffe://cluster.local/ns/shop/sa/frontend"]},
            },
        ],
    }


class CostEnvoy(Envoy):
    def __init__(self, *a, concurrency: int, **kw):
        super().__init__(*a, **kw)
        self.concurrency = concurrency

    def _argv(self) -> list:
        argv = super()._argv()
        argv[argv.index("--concurrency") + 1] = str(self.concurrency)
        return argv


def bootstrap(setup: str, wasm: str, policy: dict) -> dict:
    filters = {
        "no-filter": [],
        "trivial-wasm": [envoycfg.wasm_filter(str(NOOP_WASM), None, name="noop")],
        "meshguard": [envoycfg.wasm_filter(wasm, policy)],
    }[setup]
    return envoycfg._bootstrap(filters, envoycfg.direct_response(), [])


def measure(env: CostEnvoy, procs: Procs, requests: int) -> tuple[float, int]:
    env.start(procs)
    env.wait_listening(timeout=60)
    ready = env.wait_first_ok("GET", "/health", {}, None, timeout=60)
    for _ in range(requests):  # separate connections: every worker serves some
        http_request(env.port, "GET", "/health")
    time.sleep(0.5)
    return ready, env.rss_kib()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envoy", required=True)
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--cpu", type=int, default=0, help="CPU the Envoy under test is pinned to")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    bench = Bench.__new__(Bench)  # only for build_noop and its log
    bench.args = args
    bench.log = lambda m: print(m, file=sys.stderr)
    why = Bench.build_noop(bench)
    if why:
        print(why, file=sys.stderr)
        return 1
    policy = realistic_policy(Keys.generate().jwks())
    procs = Procs()
    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="mg-cost-"))
    try:
        for rnd in range(args.rounds):
            for conc in (1, 2):
                for setup in SETUPS:
                    env = CostEnvoy(args.envoy, bootstrap(setup, args.wasm, policy), work,
                                    f"{setup}-c{conc}-r{rnd}", args.cpu, concurrency=conc)
                    if rnd == 0 and conc == 1:
                        ok, why = env.validate()
                        if not ok:
                            print(f"{setup}: envoy --mode validate failed: {why}", file=sys.stderr)
                            return 1
                    try:
                        ready, rss = measure(env, procs, args.requests)
                    finally:
                        env.stop(procs)
                    results.setdefault((setup, conc), []).append((ready, rss))
                    print(f"round {rnd + 1}: {setup} --concurrency {conc}: ready {ready:.2f} s, "
                          f"RSS {rss / 1024:.1f} MiB", file=sys.stderr)
    except EnvoyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()

    sizes = {"meshguard": Path(args.wasm).stat().st_size, "trivial-wasm": NOOP_WASM.stat().st_size}
    med = {k: (statistics.median(r for r, _ in v), statistics.median(m for _, m in v))
           for k, v in results.items()}
    out = {"rounds": args.rounds, "module_bytes": sizes, "setups": {}}
    lines = [
        f"module: meshguard {sizes['meshguard']} bytes ({sizes['meshguard'] / 1048576:.2f} MiB); "
        f"trivial filter {sizes['trivial-wasm']} bytes ({sizes['trivial-wasm'] / 1048576:.2f} MiB)",
        f"medians of {args.rounds} interleaved rounds; added = over the same Envoy without a filter",
        "",
        "| setup | concurrency | RSS MiB | RSS added MiB | start to ready s | ready added s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for conc in (1, 2):
        base_ready, base_rss = med[("no-filter", conc)]
        for setup in SETUPS:
            ready, rss = med[(setup, conc)]
            added = (rss - base_rss) / 1024
            out["setups"][f"{setup}-c{conc}"] = {
                "rss_mib": rss / 1024, "rss_added_mib": added, "ready_s": ready,
                "ready_added_s": ready - base_ready}
            lines.append(f"| {setup} | {conc} | {rss / 1024:.1f} | {added:+.1f} | {ready:.2f} | "
                         f"{ready - base_ready:+.2f} |")
    mg2 = out["setups"]["meshguard-c2"]
    tr2 = out["setups"]["trivial-wasm-c2"]
    lines += [
        "",
        "targets (issue 11):",
        f"- module <= 1.2 MiB (stretch 1.0): {sizes['meshguard'] / 1048576:.2f} MiB "
        f"{'met' if sizes['meshguard'] <= 1.2 * 1048576 else 'MISSED'}",
        f"- RSS added at --concurrency 2 <= 45 MiB (stretch 35): {mg2['rss_added_mib']:+.1f} MiB "
        f"{'met' if mg2['rss_added_mib'] <= 45 else 'MISSED'}",
        f"- start to ready <= trivial filter + 0.4 s: {mg2['ready_s'] - tr2['ready_s']:+.2f} s "
        f"{'met' if mg2['ready_s'] - tr2['ready_s'] <= 0.4 else 'MISSED'} (concurrency 2)",
    ]
    print("\n".join(lines))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
