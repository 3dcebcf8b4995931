#!/usr/bin/env python3
"""meshguard against Envoy's native jwt_authn + rbac + local_ratelimit, side by side.

Runs one Envoy under test (--concurrency 1) pinned to one CPU and wrk pinned to the other, for each
setup in turn, round after round (A B C A B C ...), so that machine drift hits every setup alike.
Per variant (setup/workload) it reports the Envoy's own CPU time per completed request (utime+stime
from /proc over the requests wrk completed), the CPU added over the baseline, requests/s, p50/p99
latency at one connection, Envoy's resident memory; plus the module size and the time from Envoy
start to the first request served. Writes bench/results/<timestamp>.md and .json.

See bench/README.md. Only 127.0.0.1 is ever targeted; every process started here is ended on exit.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import envoycfg
from load import Envoy, EnvoyError, Procs, http_request, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
NOOP_TARGET_DIR = REPO / "target" / "bench-noop"
NOOP_WASM = NOOP_TARGET_DIR / "wasm32-wasip1" / "release" / "meshguard_bench_noop.wasm"
VERIFY_TARGET_DIR = REPO / "target" / "bench-verify"
VERIFY_WASM = VERIFY_TARGET_DIR / "wasm32-wasip1" / "release" / "meshguard_bench_verify.wasm"
ALG_SLUGS = {"rs256": "RS256", "es256": "ES256", "eddsa": "EdDSA"}

# Setups in the order every round runs them. "jwt": its workloads carry tokens.
SETUPS = {
    "baseline": "no security filter",
    "wasm-noop": "a proxy-wasm filter that does nothing (bench/noop): the wasm floor",
    "wasm-verify": "bench/verify: a proxy-wasm filter that only verifies the token's signature, "
    "no cache: the signature primitive in this Envoy's V8",
    "native-nocache": "jwt_authn + rbac + local_ratelimit, no jwt_cache_config",
    "native-cache": "jwt_authn (jwt_cache_config) + rbac + local_ratelimit",
    "mg-routes": "meshguard, route table only (foundation)",
    "mg-jwt": "meshguard, JWT + scope without the rate limit (mg-eq minus its limit: the "
    "limit's share)",
    "mg-eq": "meshguard, the native chain's policy (JWT + scope + rate limit)",
    "mg-full": "meshguard, full policy (JWT + scopes + per-subject rate limit + 1 KiB body schema)",
}
MG_SETUPS = ("mg-routes", "mg-jwt", "mg-eq", "mg-full")
JWT_SETUPS = ("native-nocache", "native-cache", "mg-jwt", "mg-eq", "mg-full")
# Setups whose requests carry tokens (the JWT setups enforce a whole policy; wasm-verify only
# checks the signature).
TOKEN_SETUPS = JWT_SETUPS + ("wasm-verify",)


@dataclass(frozen=True)
class Workload:
    method: str  # GET or POST
    alg: str | None = None  # slug (rs256, ...) or None for no token
    fresh: bool = False  # a distinct token per request (from the pool) instead of one reused

    @property
    def name(self) -> str:
        if self.alg is None:
            return self.method.lower()
        return f"{self.method.lower()}-{self.alg}-{'fresh' if self.fresh else 'reused'}"


def jwt_workloads(method: str) -> list:
    return [Workload(method, a, f) for a in ALG_SLUGS for f in (False, True)]


def setup_workloads(setup: str) -> list:
    if setup == "baseline":
        return [Workload("GET"), Workload("POST")]
    if setup in ("wasm-noop", "mg-routes"):
        return [Workload("GET")]
    if setup == "wasm-verify":
        return [Workload("GET", a, True) for a in ALG_SLUGS]
    if setup == "mg-jwt":
        return [Workload("GET", "rs256")]
    if setup == "mg-full":
        return jwt_workloads("POST")
    return jwt_workloads("GET")


def all_variants() -> list:
    return [f"{s}/{w.name}" for s in SETUPS for w in setup_workloads(s)]


@dataclass
class SetupState:
    name: str
    workloads: list
    status: str = "pending"  # pending, ok, skipped
    note: str = ""
    start_ms: list = field(default_factory=list)
    checks: list = field(default_factory=list)


# ---- options ------------------------------------------------------------------------------------


def env_default(name: str, default, conv=str):
    v = os.environ.get(name)
    return conv(v) if v not in (None, "") else default


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=int, default=env_default("BENCH_SECONDS", 3, int),
                   help="throughput pass per variant and round, whole seconds (BENCH_SECONDS, 3)")
    p.add_argument("--latency-seconds", type=int,
                   default=env_default("BENCH_LATENCY_SECONDS", 1, int),
                   help="latency pass at one connection, seconds (BENCH_LATENCY_SECONDS, 1)")
    p.add_argument("--warmup-seconds", type=int, default=env_default("BENCH_WARMUP_SECONDS", 1, int),
                   help="warm-up after each Envoy start, seconds (BENCH_WARMUP_SECONDS, 1)")
    p.add_argument("--rounds", type=int, default=env_default("BENCH_ROUNDS", 2, int),
                   help="rounds; each runs every setup once (BENCH_ROUNDS, 2)")
    p.add_argument("--variants", default=env_default("BENCH_VARIANTS", "*"),
                   help="comma-separated globs over variant or setup names, e.g. "
                   "'native-*/get-rs256-*,mg-eq' (BENCH_VARIANTS, all); the baselines the "
                   "selection needs always run. --list shows the names")
    p.add_argument("--connections", type=int, default=env_default("BENCH_CONNECTIONS", 16, int),
                   help="wrk connections in the throughput pass (BENCH_CONNECTIONS, 16)")
    p.add_argument("--tokens", type=int, default=env_default("BENCH_TOKENS", 20000, int),
                   help="distinct tokens per algorithm for the fresh-token workloads "
                   "(BENCH_TOKENS, 20000)")
    p.add_argument("--jwks", choices=("remote", "local"), default=env_default("BENCH_JWKS", "remote"),
                   help="keys from the loopback JWKS server through an Envoy cluster (remote) or "
                   "inline in the config (local) (BENCH_JWKS, remote)")
    p.add_argument("--upstream", choices=("direct", "proxy"),
                   default=env_default("BENCH_UPSTREAM", "direct"),
                   help="direct: the Envoy under test answers with a direct_response; proxy: it "
                   "routes to a shared upstream Envoy pinned with the load generator "
                   "(BENCH_UPSTREAM, direct)")
    p.add_argument("--envoy", default=env_default("ENVOY", ""),
                   help="Envoy binary (ENVOY; default .venv/bin/envoy, then PATH)")
    p.add_argument("--wasm", default=env_default("BENCH_WASM", ""),
                   help="meshguard module (BENCH_WASM; default "
                   "target/wasm32-wasip1/release/meshguard.wasm)")
    p.add_argument("--envoy-cpu", type=int, default=env_default("BENCH_ENVOY_CPU", 0, int))
    p.add_argument("--load-cpu", type=int, default=env_default("BENCH_LOAD_CPU", 1, int))
    p.add_argument("--nice", type=int, default=env_default("BENCH_NICE", 0, int),
                   help="run Envoy and wrk under `nice -n N`; a negative N (needs root) keeps "
                   "other work on a shared machine from preempting them (BENCH_NICE, 0)")
    p.add_argument("--out", default=env_default("BENCH_OUT", str(BENCH_DIR / "results")),
                   help="results directory (BENCH_OUT, bench/results)")
    p.add_argument("--keep", action="store_true", help="keep Envoy configs and logs")
    p.add_argument("--list", action="store_true", help="list variant names and exit")
    p.add_argument("--v8-report", default=env_default("BENCH_V8_REPORT", str(BENCH_DIR / "results" / "v8-latest.md")),
                   help="make v8-bench's report: the signature primitives under V8 for the fresh-token target")
    return p.parse_args(argv)


def find_envoy(opt: str) -> str:
    for cand in (opt, str(REPO / ".venv" / "bin" / "envoy"), shutil.which("envoy") or ""):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("envoy not found: pass --envoy or set ENVOY (make deps installs .venv/bin/envoy)")


def select(patterns: str) -> tuple[dict, set]:
    """(setup -> selected workloads in run order, names matched explicitly); the baselines the
    selection needs are added by add_baselines()."""
    pats = [p.strip() for p in patterns.split(",") if p.strip()] or ["*"]
    chosen: dict[str, list] = {}
    explicit = set()
    for s in SETUPS:
        for w in setup_workloads(s):
            name = f"{s}/{w.name}"
            hits = [p for p in pats if fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(s, p)]
            if hits:
                chosen.setdefault(s, []).append(w)
                # A baseline is asked for by name only, not by a glob such as `*`.
                if s != "baseline" or any("baseline" in p for p in hits):
                    explicit.add(name)
    return chosen, explicit


def add_baselines(chosen: dict, explicit: set, skipped=()) -> dict:
    """Adds the baseline of every method a (not skipped) setup uses; drops baselines nothing
    needs unless they were asked for by name."""
    methods = {
        w.method for s, ws in chosen.items() if s != "baseline" and s not in skipped for w in ws
    }
    base = [
        Workload(m)
        for m in ("GET", "POST")
        if m in methods or f"baseline/{m.lower()}" in explicit
    ]
    out = {s: ws for s, ws in chosen.items() if s != "baseline"}
    if base:
        out["baseline"] = base
    return {s: out[s] for s in SETUPS if s in out}


# ---- the run ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.procs = Procs()
        self.jwks_server = None
        self.tokens = None
        self.offsets: dict[str, int] = {}
        self.samples: dict[str, list] = {}
        self.out_dir = Path(args.out)
        self.work = Path(tempfile.mkdtemp(prefix="meshguard-bench-"))
        self.body_file = self.work / "body.json"
        self.body_file.write_bytes(envoycfg.body_1k())
        self.upstream: Envoy | None = None

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    # -- preparation --

    def prepare(self, setups: dict) -> dict:
        a = self.args
        for tool in ("wrk", "taskset"):
            if not shutil.which(tool):
                sys.exit(f"{tool} not found (make bench installs it: apt-get install -y wrk)")
        self.envoy_bin = find_envoy(a.envoy)
        self.wasm = Path(a.wasm or REPO / "target" / "wasm32-wasip1" / "release" / "meshguard.wasm")
        ncpu = os.cpu_count() or 1
        for c in (a.envoy_cpu, a.load_cpu):
            if c >= ncpu:
                sys.exit(f"cpu {c} does not exist on this {ncpu}-cpu machine")
        # Everything this process starts without taskset (wrk is pinned anyway, the JWKS server
        # thread) stays off the Envoy's core.
        os.sched_setaffinity(0, {a.load_cpu})
        states = {s: SetupState(s, ws) for s, ws in setups.items()}
        if any(s in MG_SETUPS for s in states) and not self.wasm.is_file():
            for s in MG_SETUPS:
                if s in states:
                    states[s].status, states[s].note = "skipped", f"module not found: {self.wasm}"
        if "wasm-noop" in states:
            err = self.build_noop()
            if err:
                states["wasm-noop"].status, states["wasm-noop"].note = "skipped", err
        if "wasm-verify" in states:
            err = self.build_verify()
            if err:
                states["wasm-verify"].status, states["wasm-verify"].note = "skipped", err
        if any(s in TOKEN_SETUPS for s in states):
            from keys import JwksServer, prepare_tokens

            self.tokens = prepare_tokens(Path(a.out) / ".cache", a.tokens, log=self.log)
            self.jwks = self.tokens.keys.jwks()
            self.jwks_server = JwksServer(self.jwks).start()
        else:
            self.jwks = {"keys": []}
        if a.upstream == "proxy":
            self.upstream = Envoy(self.envoy_bin, envoycfg.upstream_bootstrap(), self.work,
                                  "upstream", a.load_cpu, a.nice)
            self.upstream.start(self.procs)
            self.upstream.wait_listening()
        for st in states.values():
            if st.status == "skipped":
                continue
            ok, why = self.make_envoy(st.name, 0).validate()
            if not ok:
                st.status = "skipped"
                st.note = f"config not accepted by envoy --mode validate: {why}"
                if a.jwks == "remote" and st.name in JWT_SETUPS:
                    ok_local, _ = self.make_envoy(st.name, 0, jwks_mode="local").validate()
                    if ok_local:
                        st.note += " (it validates with local_jwks: try --jwks local)"
        return states

    def build_noop(self) -> str:
        """Builds bench/noop (seconds; cargo's cache makes later runs instant); '' or why not."""
        return self.build_filter("noop", "the no-op wasm filter", NOOP_TARGET_DIR, NOOP_WASM)

    def build_verify(self) -> str:
        """Builds bench/verify (ring: about a minute the first time, needs clang); '' or why not."""
        return self.build_filter("verify", "the signature-only wasm filter", VERIFY_TARGET_DIR,
                                 VERIFY_WASM)

    def build_filter(self, crate: str, what: str, target_dir: Path, wasm: Path) -> str:
        """Builds the bench crate bench/<crate> for wasm32-wasip1 into target_dir; '' or why not."""
        if not shutil.which("cargo"):
            return f"cargo not found: cannot build bench/{crate}"
        self.log(f"building {what} (bench/{crate}) ...")
        try:
            r = subprocess.run(
                ["cargo", "build", "-q", "--release", "--target", "wasm32-wasip1",
                 "--manifest-path", str(BENCH_DIR / crate / "Cargo.toml"),
                 "--target-dir", str(target_dir)],
                capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            return f"building bench/{crate} timed out"
        if r.returncode != 0 or not wasm.is_file():
            return f"building bench/{crate} failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        return ""

    def make_envoy(self, setup: str, rnd: int, jwks_mode: str | None = None) -> Envoy:
        boot = envoycfg.setup_bootstrap(
            setup,
            wasm_path=str(self.wasm),
            noop_wasm_path=str(NOOP_WASM),
            verify_wasm_path=str(VERIFY_WASM),
            jwks=self.jwks,
            jwks_mode=jwks_mode or self.args.jwks,
            jwks_port=self.jwks_server.port if self.jwks_server else 0,
            upstream_port=self.upstream.port if self.upstream else None,
        )
        return Envoy(self.envoy_bin, boot, self.work, f"{setup}-r{rnd}", self.args.envoy_cpu,
                     self.args.nice)

    # -- requests --

    def request_for(self, w: Workload, token: str | None = None) -> tuple:
        headers = {}
        body = None
        tok = token
        if tok is None and w.alg is not None:
            tok = self.tokens.reused[ALG_SLUGS[w.alg]]
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        if w.method == "POST":
            body = self.body_file.read_bytes()
            headers["Content-Type"] = "application/json"
        return w.method, envoycfg.API_PATH, headers, body

    def policy_checks(self, setup: str, port: int) -> list:
        """Proves the setup enforces its policy: the right refusals, and a 200 for a good request."""
        cases = []
        if setup in JWT_SETUPS:
            method = "POST" if setup == "mg-full" else "GET"
            w = Workload(method, "es256")
            m, path, h, b = self.request_for(w)
            noauth = {k: v for k, v in h.items() if k != "Authorization"}
            cases.append(("valid token", (m, path, h, b), {200}))
            cases.append(("no token", (m, path, noauth, b), {401}))
            _, _, hs, _ = self.request_for(w, token=self.tokens.noscope)
            cases.append(("token without the scope", (m, path, hs, b), {403}))
            cases.append(("path outside the policy", (m, "/other", h, b), {403, 404}))
            if setup == "mg-full":
                cases.append(("body against the schema", (m, path, h, b'{"name":""}'), {400}))
        elif setup == "wasm-verify":
            # Signature only: no scope, path or claim checks to prove, but every algorithm's good
            # token must pass and a tampered signature must not.
            for slug, alg in ALG_SLUGS.items():
                m, path, h, b = self.request_for(Workload("GET", slug))
                cases.append((f"valid {alg} token", (m, path, h, b), {200}))
                bad = {**h, "Authorization": "Bearer " + tamper_signature(self.tokens.reused[alg])}
                cases.append((f"{alg} token with a tampered signature", (m, path, bad, b), {401}))
            noauth = {k: v for k, v in h.items() if k != "Authorization"}
            cases.append(("no token", (m, path, noauth, b), {401}))
        elif setup == "mg-routes":
            cases.append(("route", ("GET", envoycfg.API_PATH, {}, None), {200}))
            cases.append(("unmatched path", ("GET", "/other", {}, None), {404}))
        else:
            cases.append(("any request", ("GET", envoycfg.API_PATH, {}, None), {200}))
        out = []
        for what, (m, path, h, b), want in cases:
            try:
                status, _ = http_request(port, m, path, h, b)
            except OSError as e:
                status = f"error {type(e).__name__}"
            out.append({"check": what, "status": status, "want": sorted(want),
                        "ok": status in want})
        return out

    # -- one setup in one round --

    def run_setup(self, st: SetupState, rnd: int) -> None:
        a = self.args
        env = self.make_envoy(st.name, rnd)
        env.start(self.procs)
        try:
            env.wait_listening()
            first = st.workloads[0]
            start_s = env.wait_first_ok(*self.request_for(first))
            st.start_ms.append(round(start_s * 1000, 1))
            if rnd == 0:
                st.checks = self.policy_checks(st.name, env.port)
                bad = [c for c in st.checks if not c["ok"]]
                if bad:
                    raise EnvoyError("policy check failed: " + "; ".join(
                        f"{c['check']}: got {c['status']}, want {c['want']}" for c in bad))
            if a.warmup_seconds > 0:
                self.wrk(env, first, a.warmup_seconds, a.connections)
            for w in st.workloads:
                self.measure(st, env, w, rnd)
        finally:
            env.stop(self.procs)

    def wrk(self, env: Envoy, w: Workload, seconds: int, connections: int) -> dict:
        kw = {}
        if w.alg is not None:
            alg = ALG_SLUGS[w.alg]
            if w.fresh:
                kw["tokens_file"] = self.tokens.pools[alg]
                kw["offset"] = self.offsets.get(alg, 0)
            else:
                kw["token"] = self.tokens.reused[alg]
        if w.method == "POST":
            kw["body_file"] = self.body_file
        res = run_wrk(self.procs, port=env.port, path=envoycfg.API_PATH, seconds=seconds,
                      connections=connections, cpu=self.args.load_cpu, method=w.method,
                      nice=self.args.nice, **kw)
        if w.alg is not None and w.fresh:
            alg = ALG_SLUGS[w.alg]
            self.offsets[alg] = (self.offsets.get(alg, 0) + int(res["requests"])) % self.args.tokens
        return res

    def measure(self, st: SetupState, env: Envoy, w: Workload, rnd: int) -> None:
        a = self.args
        # Latency first, at one connection: it also warms this workload's code path.
        lat = self.wrk(env, w, a.latency_seconds, 1)
        stats0 = env.stats()
        cpu0 = env.cpu_seconds()
        t0 = time.monotonic()
        thr = self.wrk(env, w, a.seconds, a.connections)
        wall = time.monotonic() - t0
        cpu1 = env.cpu_seconds()
        stats1 = env.stats()
        rss = env.rss_kib()
        reqs = int(thr["requests"])
        non_2xx = sum(
            stats1.get(f"http.bench.downstream_rq_{c}", 0)
            - stats0.get(f"http.bench.downstream_rq_{c}", 0)
            for c in ("1xx", "3xx", "4xx", "5xx")
        )
        counters = {
            k: stats1[k] - stats0.get(k, 0)
            for k in stats1
            if any(t in k for t in ("jwt", "meshguard", "rbac", "bench_rl", "wasm"))
            and stats1[k] != stats0.get(k, 0)
        }
        sample = {
            "round": rnd,
            "requests": reqs,
            "rps": reqs / (thr["duration_us"] / 1e6) if thr["duration_us"] else 0.0,
            "cpu_s": cpu1 - cpu0,
            "cpu_us_per_req": (cpu1 - cpu0) * 1e6 / reqs if reqs else None,
            "envoy_util": (cpu1 - cpu0) / wall if wall else None,
            "non_2xx": non_2xx,
            "socket_errors": int(thr["connect"] + thr["read"] + thr["write"] + thr["timeout"]),
            "p50_us": lat["p50_us"],
            "p99_us": lat["p99_us"],
            "lat_requests": int(lat["requests"]),
            "rss_kib": rss,
            "counters": counters,
        }
        name = f"{st.name}/{w.name}"
        self.samples.setdefault(name, []).append(sample)
        cpu = sample["cpu_us_per_req"]
        self.log(
            f"  {name:<32} {cpu if cpu is not None else float('nan'):8.1f} us/req "
            f"{sample['rps']:9.0f} rps  p50 {lat['p50_us']:7.0f} us  p99 {lat['p99_us']:7.0f} us"
            f"  util {100 * (sample['envoy_util'] or 0):3.0f}%"
            + (f"  NON-2XX {sample['non_2xx']}" if sample["non_2xx"] else "")
        )

    def run(self, states: dict) -> None:
        a = self.args
        for rnd in range(a.rounds):
            self.log(f"round {rnd + 1}/{a.rounds} (load average {os.getloadavg()[0]:.2f})")
            for st in states.values():
                if st.status == "skipped":
                    continue
                try:
                    self.run_setup(st, rnd)
                    st.status = "ok"
                except (EnvoyError, RuntimeError) as e:
                    st.status, st.note = "skipped", str(e)
                    self.log(f"  {st.name}: skipped: {e}")

    def close(self) -> None:
        self.procs.stop_all()
        if self.jwks_server:
            self.jwks_server.stop()
        if self.args.keep:
            self.log(f"configs and logs kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def tamper_signature(token: str) -> str:
    """The token with the first character of its signature changed (the first bytes of the
    signature change; the last character may carry only padding bits)."""
    head, sig = token.rsplit(".", 1)
    return f"{head}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"


# ---- results ------------------------------------------------------------------------------------


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(bench: Bench, states: dict) -> dict:
    variants = {}
    for name, samples in bench.samples.items():
        setup, wname = name.split("/", 1)
        med = {k: median([s[k] for s in samples]) for k in
               ("cpu_us_per_req", "rps", "p50_us", "p99_us", "rss_kib", "envoy_util")}
        variants[name] = {
            "setup": setup,
            "workload": wname,
            "method": wname.split("-")[0].upper(),
            "median": med,
            "non_2xx": sum(s["non_2xx"] for s in samples),
            "requests": sum(s["requests"] for s in samples),
            "samples": samples,
        }
    # Added CPU over the baseline of the same method, paired round by round, then the median.
    for name, v in variants.items():
        base = variants.get(f"baseline/{v['method'].lower()}")
        if base is None or v["setup"] == "baseline":
            v["added_cpu_us"] = 0.0 if v["setup"] == "baseline" else None
            continue
        by_round = {s["round"]: s["cpu_us_per_req"] for s in base["samples"]}
        diffs = [s["cpu_us_per_req"] - by_round[s["round"]] for s in v["samples"]
                 if s["cpu_us_per_req"] is not None and by_round.get(s["round"]) is not None]
        v["added_cpu_us"] = median(diffs)
        v["added_cpu_us_range"] = [min(diffs), max(diffs)] if diffs else None
        v["rss_over_baseline_mib"] = (
            (v["median"]["rss_kib"] - base["median"]["rss_kib"]) / 1024
            if v["median"]["rss_kib"] and base["median"]["rss_kib"] else None)
    ratios = []
    for alg in ALG_SLUGS:
        for fresh in ("reused", "fresh"):
            wl = f"get-{alg}-{fresh}"
            mg = variants.get(f"mg-eq/{wl}", {}).get("added_cpu_us")
            nn = variants.get(f"native-nocache/{wl}", {}).get("added_cpu_us")
            nc = variants.get(f"native-cache/{wl}", {}).get("added_cpu_us")
            full = variants.get(f"mg-full/post-{alg}-{fresh}", {}).get("added_cpu_us")
            ratios.append({
                "workload": wl, "mg_eq_added": mg, "native_nocache_added": nn,
                "native_cache_added": nc, "mg_full_added": full,
                "mg_over_nocache": mg / nn if mg is not None and nn else None,
                "mg_over_cache": mg / nc if mg is not None and nc else None,
            })
    primitives = {
        alg: {"envoy": envoy_primitives(variants).get(alg),
              "v8": v8_primitives(bench.args.v8_report).get(alg)}
        for alg in ALG_SLUGS.values()
    }
    return {"variants": variants, "ratios": ratios, "primitives": primitives,
            "targets": targets(bench, variants, ratios)}


def envoy_primitives(variants: dict) -> dict:
    """Signature primitive per algorithm in this Envoy (us): wasm-verify's added CPU for a fresh
    token minus wasm-noop's (both from this run), so the wasm floor (VM entry, contexts) is not
    counted; {"RS256": 290.0, ...}, only for algorithms with both figures."""
    noop = variants.get("wasm-noop/get", {}).get("added_cpu_us")
    out = {}
    if noop is None:
        return out
    for slug, alg in ALG_SLUGS.items():
        ver = variants.get(f"wasm-verify/get-{slug}-fresh", {}).get("added_cpu_us")
        if ver is not None:
            out[alg] = ver - noop
    return out


def v8_primitives(path: str) -> dict:
    """Signature primitive per algorithm under V8 (us), from `make v8-bench`'s report
    (examples/core_bench.rs under node): {"RS256": 263.6, ...}; empty when there is none."""
    out = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] in ALG_SLUGS.values():
            try:
                out[cells[0]] = float(cells[1])
            except ValueError:
                pass
    return out


def targets(bench: Bench, variants: dict, ratios: list) -> list:
    """Issue 11's CPU and size targets, each met / not met / not measured (memory and start to
    ready are bench/cost.py's, printed after this report by `make bench`)."""
    out = []

    def add(what, value, ok):
        out.append({"target": what, "value": value,
                    "met": None if ok is None else bool(ok)})

    size = bench.wasm.stat().st_size if bench.wasm.is_file() else None
    add("module <= 1.2 MiB (stretch 1.0)", f"{size / 1048576:.2f} MiB" if size else None,
        None if size is None else size <= 1.2 * 1048576)
    for r in ratios:
        mg, nc = r["mg_eq_added"], r["native_cache_added"]
        wl = r["workload"]
        if not wl.endswith("-reused"):
            continue
        add(f"mg-eq {wl} (scope + rate limit): added <= 1.3 x native-cache added",
            None if mg is None or nc is None else f"{mg:.1f} vs {nc:.1f} ({mg / nc:.2f} x)" if nc else None,
            None if mg is None or not nc else mg <= 1.3 * nc)
    # The primitive measured in this Envoy when the run has wasm-verify and wasm-noop; else
    # node's V8 (make v8-bench), which is not Envoy's V8 build.
    in_envoy = envoy_primitives(variants)
    under_node = v8_primitives(bench.args.v8_report)
    noop = variants.get("wasm-noop/get", {}).get("added_cpu_us")
    for slug, alg in ALG_SLUGS.items():
        what = f"mg-eq {alg}: (fresh - reused) - primitive <= 15 us"
        fresh = variants.get(f"mg-eq/get-{slug}-fresh", {}).get("added_cpu_us")
        reused = variants.get(f"mg-eq/get-{slug}-reused", {}).get("added_cpu_us")
        if alg in in_envoy:
            prim = in_envoy[alg]
            ver = variants[f"wasm-verify/get-{slug}-fresh"]["added_cpu_us"]
            src = "primitive in Envoy (wasm-verify - wasm-noop)"
            prim_txt = f"({ver:.1f} - {noop:.1f})"
        elif alg in under_node:
            prim = under_node[alg]
            src = "primitive under node's V8 (make v8-bench)"
            prim_txt = f"{prim:.1f}"
        else:
            prim = None
        if fresh is None or reused is None or prim is None:
            add(what, None, None)
            continue
        rest = fresh - reused - prim
        add(what, f"(fresh - reused) - {src}: ({fresh:.1f} - {reused:.1f}) - {prim_txt} = "
            f"{rest:.1f} us", rest <= 15)
    return out


def fmt(x, spec=".1f", none="-"):
    return none if x is None else format(x, spec)


def render(bench: Bench, states: dict, summary: dict, meta: dict) -> str:
    a = bench.args
    L = []
    L.append(f"# meshguard benchmark {meta['timestamp']}")
    L.append("")
    L.append(f"- machine: {meta['cpus']} CPUs ({meta['cpu_model']}), kernel {meta['kernel']}, "
             f"load average {meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end")
    L.append(f"- Envoy: {meta['envoy_version']}, --concurrency 1 on CPU {a.envoy_cpu}; wrk on CPU "
             f"{a.load_cpu} ({a.connections} connections; latency at 1 connection)")
    L.append(f"- module: {meta['wasm']} ({fmt(meta['wasm_kib'], '.0f')} KiB, "
             f"sha256 {str(meta['wasm_sha256'])[:12]}), meshguard commit {meta['git']}")
    L.append(f"- {a.rounds} rounds x ({a.latency_seconds}s latency + {a.seconds}s throughput) per "
             f"variant, interleaved by setup; upstream: {a.upstream}; JWKS: {a.jwks}; "
             f"token pool: {a.tokens} per algorithm; nice {a.nice}; "
             f"wall time {meta['wall_s']:.0f}s")
    L.append("")
    L.append("CPU = the Envoy process's utime+stime over the requests wrk completed (median over "
             "rounds); added = minus the baseline with the same method, paired per round.")
    L.append("")
    L.append("| variant | CPU us/req | added us (range over rounds) | req/s | p50 us | p99 us | "
             "RSS MiB | Envoy util | non-2xx |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in summary["variants"].items():
        m = v["median"]
        r = v.get("added_cpu_us_range")
        rng = f" ({r[0]:.0f}..{r[1]:.0f})" if r and len(v["samples"]) > 1 else ""
        L.append(
            f"| {name} | {fmt(m['cpu_us_per_req'])} | {fmt(v['added_cpu_us'])}{rng} | "
            f"{fmt(m['rps'], '.0f')} | {fmt(m['p50_us'], '.0f')} | {fmt(m['p99_us'], '.0f')} | "
            f"{fmt(m['rss_kib'] / 1024 if m['rss_kib'] else None)} | "
            f"{fmt(m['envoy_util'] * 100 if m['envoy_util'] is not None else None, '.0f')}% | "
            f"{v['non_2xx']} |")
    L.append("")
    L.append("## Setups")
    L.append("")
    L.append("| setup | what | status | start to first 200 (ms, per round) | note |")
    L.append("|---|---|---|---|---|")
    for st in states.values():
        L.append(f"| {st.name} | {SETUPS[st.name]} | {st.status} | "
                 f"{', '.join(fmt(x) for x in st.start_ms) or '-'} | {st.note or ''} |")
    if any(r["mg_eq_added"] is not None or r["mg_full_added"] is not None
           for r in summary["ratios"]):
        L.append("")
        L.append("## meshguard / native (added CPU per request, us)")
        L.append("")
        L.append("| workload | mg-eq | native-nocache | native-cache | mg/nocache | mg/cache | "
                 "mg-full (POST) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in summary["ratios"]:
            L.append(f"| {r['workload']} | {fmt(r['mg_eq_added'])} | "
                     f"{fmt(r['native_nocache_added'])} | {fmt(r['native_cache_added'])} | "
                     f"{fmt(r['mg_over_nocache'], '.2f')} | {fmt(r['mg_over_cache'], '.2f')} | "
                     f"{fmt(r['mg_full_added'])} |")
    floor = summary["variants"].get("wasm-noop/get", {}).get("added_cpu_us")
    routes = summary["variants"].get("mg-routes/get", {}).get("added_cpu_us")
    if floor is not None:
        L.append("")
        L.append(f"Wasm floor: a no-op proxy-wasm filter adds {floor:.1f} us/req"
                 + (f"; meshguard with its route table only adds {routes:.1f} us/req "
                    f"({routes - floor:.1f} above the floor)." if routes is not None else "."))
        jwt = summary["variants"].get("mg-jwt/get-rs256-reused", {}).get("added_cpu_us")
        eq = summary["variants"].get("mg-eq/get-rs256-reused", {}).get("added_cpu_us")
        if None not in (routes, jwt, eq):
            L.append("")
            L.append(f"Reused RS256 token by stage (added us): the wasm floor {floor:.1f}, the "
                     f"route table {routes - floor:.1f}, the cached token and its scope "
                     f"{jwt - routes:.1f}, the rate limit {eq - jwt:.1f} (mg-routes, mg-jwt, "
                     f"mg-eq).")
    prims = {a: p for a, p in summary["primitives"].items() if p["envoy"] is not None}
    if prims:
        L.append("")
        L.append("Signature primitive per algorithm in this Envoy (wasm-verify - wasm-noop, added "
                 "CPU)" + (" vs under node's V8 (make v8-bench)" if any(
                     p["v8"] is not None for p in prims.values()) else "") + ": "
                 + "; ".join(f"{a} {p['envoy']:.1f}"
                             + (f" vs {p['v8']:.1f}" if p["v8"] is not None else "")
                             for a, p in prims.items()) + " us.")
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for t in summary["targets"]:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "NO")
        L.append(f"| {t['target']} | {t['value'] or '-'} | {met} |")
    notes = []
    for name, v in summary["variants"].items():
        # wasm-verify has no cache: a pool that wraps changes nothing for it.
        if v["workload"].endswith("-fresh") and v["setup"] != "wasm-verify":
            per_round = max(s["requests"] + s["lat_requests"] for s in v["samples"])
            if per_round > a.tokens:
                notes.append(f"{name}: {per_round} requests per round over a pool of {a.tokens} "
                             "tokens: a token cache larger than the pool would get hits")
        if v["non_2xx"]:
            notes.append(f"{name}: {v['non_2xx']} responses were not 2xx: its figures are suspect")
    idle = [f"{n} ({v['median']['envoy_util']:.0%})" for n, v in summary["variants"].items()
            if v["median"]["envoy_util"] is not None and v["median"]["envoy_util"] < 0.85]
    if idle:
        notes.append("Envoy was busy under 85% of the time in " + ", ".join(idle) + ": the load "
                     "generator or other work on the machine was the limit, and CPU/req is "
                     "inflated (fewer requests per wake-up, caches shared with other work)")
    if notes:
        L.append("")
        L.append("## Notes")
        L.append("")
        L += [f"- {n}" for n in notes]
    return "\n".join(L) + "\n"


def envoy_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip().split("version:")[-1].strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_describe() -> str:
    try:
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(all_variants()))
        return 0
    chosen, explicit = select(args.variants)
    if not chosen:
        sys.exit(f"no variant matches {args.variants!r}; --list shows the names")
    setups = add_baselines(chosen, explicit)
    n_meas = sum(len(ws) for ws in setups.values())
    est = args.rounds * (n_meas * (args.seconds + args.latency_seconds + 0.5)
                         + len(setups) * (args.warmup_seconds + 1.5))
    print(f"{n_meas} variants x {args.rounds} rounds, about {est / 60:.1f} min "
          f"(plus token minting on a first run)", flush=True)

    # SIGTERM ends the run like Ctrl-C: through the finally below, which ends every process.
    signal.signal(signal.SIGTERM, _interrupt)
    bench = Bench(args)
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    try:
        states = bench.prepare(setups)
        skipped = {s for s, st in states.items() if st.status == "skipped"}
        needed = add_baselines(chosen, explicit, skipped).get("baseline", [])
        if "baseline" in states:
            states["baseline"].workloads = needed
            if not needed:
                del states["baseline"]
        for st in states.values():
            if st.status == "skipped":
                print(f"  {st.name}: skipped: {st.note}", flush=True)
        bench.run(states)
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        bench.close()

    summary = summarize(bench, states)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    wasm_ok = bench.wasm.is_file()
    meta = {
        "timestamp": stamp,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "envoy": bench.envoy_bin,
        "envoy_version": envoy_version(bench.envoy_bin),
        "wasm": str(bench.wasm),
        "wasm_kib": bench.wasm.stat().st_size / 1024 if wasm_ok else None,
        "wasm_sha256": hashlib.sha256(bench.wasm.read_bytes()).hexdigest() if wasm_ok else None,
        "git": git_describe(),
        "wall_s": time.monotonic() - t0,
        "settings": {k: v for k, v in vars(args).items() if k not in ("list",)},
    }
    md = render(bench, states, summary, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}.md").write_text(md)
    doc = {
        "meta": meta,
        "setups": {s.name: {"what": SETUPS[s.name], "status": s.status, "note": s.note,
                            "start_to_first_200_ms": s.start_ms, "checks": s.checks}
                   for s in states.values()},
        **summary,
    }
    (out / f"{stamp}.json").write_text(json.dumps(doc, indent=1))
    print()
    print(md)
    print(f"written: {out / (stamp + '.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
