"""Processes the benchmark starts (Envoy, wrk), what it reads from /proc, and wrk's results.

Every process is started in its own session and registered with a Procs instance, which ends them
(by their own process-group id: the group contains only what we started) on exit, error or Ctrl-C.
Everything talks to 127.0.0.1 only, and every wrk run is bounded by its duration plus a timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk_requests.lua"

# The e2e harness's process-group handling (standard library only), one copy for both.
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "e2e"))
from procgroup import kill_group  # noqa: E402


class Procs:
    """Registry of started processes; stop_all() ends every one that is still running."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def popen(self, argv: list, **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen, grace: float = 3.0) -> None:
        kill_group(p, grace)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception:  # keep ending the others
                pass
        self.procs.clear()


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def http_request(
    port: int, method: str, path: str, headers=None, body=None, timeout=2.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def nice_prefix(nice: int) -> list:
    """`nice -n N` (exec's its command: the pid stays the one we started), or nothing."""
    return ["nice", "-n", str(nice)] if nice else []


class EnvoyError(RuntimeError):
    pass


class Envoy:
    """One Envoy process: --concurrency 1, pinned to one CPU, admin and listener on port 0."""

    def __init__(
        self, binary: str, bootstrap: dict, workdir: Path, name: str, cpu: int, nice: int = 0
    ):
        self.binary = binary
        self.nice = nice
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.name = name
        self.cpu = cpu
        self.config_path = workdir / f"{name}.json"
        self.admin_path = workdir / f"{name}.admin"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.admin_port = 0
        self.t_start = 0.0
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(bootstrap, indent=1))

    def _argv(self) -> list:
        return [
            self.binary,
            "-c",
            str(self.config_path),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warning",
            "--admin-address-path",
            str(self.admin_path),
        ]

    def validate(self) -> tuple[bool, str]:
        """`envoy --mode validate`: builds every filter, runs the wasm plugin's configure."""
        try:
            r = subprocess.run(
                self._argv() + ["--mode", "validate"],
                capture_output=True,
                text=True,
                timeout=60,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return False, "envoy --mode validate timed out"
        out = r.stdout + r.stderr
        if r.returncode == 0:
            return True, ""
        lines = [ln for ln in out.splitlines() if "meshguard config rejected" in ln]
        if not lines:
            lines = [ln for ln in out.splitlines() if "error" in ln.lower() or "critical" in ln]
        return False, (lines[-1] if lines else out.strip()[-400:]).strip()

    def start(self, procs: Procs) -> None:
        self.admin_path.unlink(missing_ok=True)
        self.t_start = time.monotonic()
        log = open(self.log_path, "ab")
        self.proc = procs.popen(
            nice_prefix(self.nice) + ["taskset", "-c", str(self.cpu)] + self._argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise EnvoyError(f"envoy {self.name} exited; log: {self.log_tail()}")

    def wait_listening(self, timeout: float = 20.0) -> None:
        """Waits for the admin address, then reads the listener's port from /listeners."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                addr = self.admin_path.read_text().strip()
            except FileNotFoundError:
                addr = ""
            if addr:
                self.admin_port = int(addr.rsplit(":", 1)[1])
                try:
                    _, body = http_request(self.admin_port, "GET", "/listeners?format=json")
                    statuses = json.loads(body).get("listener_statuses", [])
                    port = statuses[0]["local_address"]["socket_address"].get("port_value", 0)
                    if port:
                        self.port = port
                        return
                except (OSError, ValueError, KeyError, IndexError, http.client.HTTPException):
                    pass
            time.sleep(0.002)
        raise EnvoyError(f"envoy {self.name} did not start listening in {timeout}s")

    def wait_first_ok(self, method, path, headers, body, timeout: float = 15.0) -> float:
        """Polls until the request is answered 200; returns seconds since start()."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, _ = http_request(self.port, method, path, headers, body, timeout=1.0)
                if status == 200:
                    return time.monotonic() - self.t_start
                last = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as e:
                last = type(e).__name__
            time.sleep(0.002)
        raise EnvoyError(f"no 200 from {self.name} within {timeout}s (last: {last})")

    def stats(self) -> dict:
        """Counters and gauges from the admin endpoint, name -> value."""
        try:
            _, body = http_request(self.admin_port, "GET", "/stats?format=json", timeout=5.0)
            out = {}
            for s in json.loads(body).get("stats", []):
                if "name" in s and isinstance(s.get("value"), int):
                    out[s["name"]] = s["value"]
            return out
        except (OSError, ValueError, http.client.HTTPException):
            return {}

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def log_tail(self, n: int = 5) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def stop(self, procs: Procs) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


def run_wrk(
    procs: Procs,
    *,
    port: int,
    path: str,
    seconds: float,
    connections: int,
    cpu: int,
    method: str = "GET",
    token: str | None = None,
    tokens_file: Path | None = None,
    offset: int = 0,
    body_file: Path | None = None,
    nice: int = 0,
) -> dict:
    """One bounded wrk run; every request comes from wrk_requests.lua, so the load generator does
    the same work per request in every variant. Returns the numbers printed by the script's done()."""
    duration = max(1, int(seconds))
    argv = nice_prefix(nice) + [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        f"http://127.0.0.1:{port}{path}",
        "--",
        str(tokens_file) if tokens_file else "-",
        str(offset),
        method,
        str(body_file) if body_file else "-",
        token or "-",
    ]
    p = procs.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        procs.stop(p)
        raise RuntimeError("wrk did not finish in time")
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            res = {}
            for kv in line.split()[1:]:
                k, v = kv.split("=", 1)
                res[k] = float(v)
            return res
    raise RuntimeError(f"wrk gave no result (rc={p.returncode}): {err.strip()[-300:]}")


def add_micro_args(ap, repo: Path, wasm_b_help: str) -> None:
    """The options every single-feature bench (validate_body.py, response_strip.py) takes."""
    ap.add_argument("--envoy", default=str(repo / ".venv" / "bin" / "envoy"))
    ap.add_argument("--wasm", default=str(repo / "dist" / "meshguard.wasm"))
    ap.add_argument("--wasm-b", help=wasm_b_help)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--warmup-seconds", type=int, default=1)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--envoy-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--nice", type=int, default=0, help="run Envoy and wrk under nice -n N (negative needs root)")


def measure_cpu(procs: Procs, envoy: Envoy, args, setup: str, **wrk) -> tuple[float, dict]:
    """A warm-up wrk run, then a measured one: the Envoy's CPU microseconds per completed request
    and wrk's numbers. Stops the run when wrk saw errors or no request."""
    common = dict(port=envoy.port, connections=args.connections, cpu=args.load_cpu, nice=args.nice, **wrk)
    run_wrk(procs, seconds=args.warmup_seconds, **common)
    before = envoy.cpu_seconds()
    res = run_wrk(procs, seconds=args.seconds, **common)
    used = envoy.cpu_seconds() - before
    if res["status_errors"] or not res["requests"]:
        raise SystemExit(f"{setup}: {res}")
    return used / res["requests"] * 1e6, res


def interleaved_envoys(args, setups: list[str], workdir: Path, procs: Procs, bootstrap_of):
    """Every setup once per round, each in a fresh listening Envoy (`bootstrap_of(setup)`), each
    round starting one setup later (A B C, B C A, ...) so that no setup always runs first or last.
    Yields (round, setup, envoy); the Envoy stops when the caller moves on."""
    for rnd in range(args.rounds):
        shift = rnd % len(setups)
        for setup in setups[shift:] + setups[:shift]:
            envoy = Envoy(args.envoy, bootstrap_of(setup), workdir, f"{setup}-{rnd}", args.envoy_cpu,
                          nice=args.nice)
            envoy.start(procs)
            try:
                envoy.wait_listening()
                yield rnd, setup, envoy
            finally:
                envoy.stop(procs)


def rounds_text(values: list[float]) -> str:
    """Every round's figure, for a summary line: `12.3, 11.9, ...`."""
    return ", ".join(f"{x:.1f}" for x in values)


def paired(cpu: dict[str, list[float]], a: str, b: str) -> list[float]:
    """Per round, setup `a`'s figure minus setup `b`'s (both ran in that round)."""
    return [x - y for x, y in zip(cpu[a], cpu[b])]


def print_medians(title: str, cpu: dict[str, list[float]], width: int) -> None:
    """A summary's head: the title, then each setup's median CPU per request and its rounds."""
    print(f"\n{title}")
    for setup, values in cpu.items():
        print(f"  {setup:{width}s} {statistics.median(values):7.1f} us/req  (rounds: {rounds_text(values)})")
