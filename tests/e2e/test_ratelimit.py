"""Rate limits and lockout in a real Envoy with several workers and parallel clients.

Each Envoy runs with `--concurrency 2` (one with 4 for the exactness test): every worker has its
own wasm VM, and the limits hold only because the buckets live in process-wide shared data
updated by compare-and-swap. Bursts come from 16 threads, each on its own connection, released
together by a barrier; the test proves the connections landed on more than one worker.

Every test uses its own key values (an `x-api-key`, a client address in `x-forwarded-for`, a user
name), so tests never share a bucket and can run in any order. Buckets that must not refill during
a test use hour-long periods; refill and lockout expiry use 1-2 s periods and bounded waits taken
from the `Retry-After` the module sent. No assertion depends on latency.

Tests that key on JWT claims or count meshguard's own 401s run a second Envoy with `jwt_providers`
and `routes[].jwt`; a module that refuses that config fails them.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping

import http.client
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import harness
from harness import assert_problem, counter, rid, upstream_records, worker_connections

HOUR = 3600
PARALLEL = 16

# Client addresses go only into x-forwarded-for headers (documentation ranges, RFC 5737); all
# traffic goes to 127.0.0.1.
_ips = (f"203.0.113.{i}" for i in itertools.count(1))


def next_ip() -> str:
    return next(_ips)


def limit(name: str, key: str, requests: int, per_seconds: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "key": key, "requests": requests, "per_seconds": per_seconds, **extra}


EXACT_LIMIT = 25

CONFIG = {
    "mode": "enforce",
    "unmatched": "deny",
    "client_ip": {"source": "x_forwarded_for", "trusted_hops": 1},
    "routes": [
        # Exactness: no refill within the test (one unit per 144 s).
        {"name": "exact", "match": {"prefix": "/exact/"},
         "rate_limits": [limit("per-key", "header:x-api-key", EXACT_LIMIT, HOUR)]},
        # Refill: one unit every 500 ms, burst 2.
        {"name": "refill", "match": {"prefix": "/refill/"},
         "rate_limits": [limit("fast", "header:x-api-key", 2, 1)]},
        # Per API key.
        {"name": "keys", "match": {"prefix": "/keys/"},
         "rate_limits": [limit("api-key", "header:x-api-key", 3, HOUR)]},
        # Per-address limit; the address is the rightmost x-forwarded-for entry.
        {"name": "per-ip", "match": {"prefix": "/per-ip/"},
         "rate_limits": [limit("ip", "client_ip", 3, HOUR)]},
        # Headers on every response: q=5 per w=10 s, one unit every 2 s.
        {"name": "headers", "match": {"prefix": "/headers/"},
         "rate_limits": [limit("hdr", "header:x-api-key", 5, 10, response_headers=True)]},
        # A report-mode limit on an enforcing route.
        {"name": "report", "match": {"prefix": "/report/"},
         "rate_limits": [limit("shadow", "header:x-api-key", 3, HOUR, mode="report")]},
        # Cost: 3 units of 10 per request.
        {"name": "cost", "match": {"prefix": "/cost/"},
         "rate_limits": [limit("units", "header:x-api-key", 10, HOUR, cost=3, response_headers=True)]},
        # Two limits: the wide one is charged first and refunded when the narrow one refuses.
        {"name": "multi", "match": {"prefix": "/multi/"},
         "rate_limits": [limit("wide", "header:x-api-key", 10, HOUR),
                         limit("narrow", "header:x-user", 3, HOUR)]},
        # Default limit name (the key text) in metric names.
        {"name": "unnamed", "match": {"prefix": "/unnamed/"},
         "rate_limits": [{"key": "header:x-api-key", "requests": 1, "per_seconds": HOUR}]},
        # A tiny table: 2 slots of 4 ways (only the key flood test uses it).
        {"name": "flood", "match": {"prefix": "/flood/"},
         "rate_limits": [limit("small", "header:x-api-key", 3, HOUR, max_keys=8)]},
        # Lockout by client address after 3 upstream 401s, blocked for 2 s.
        {"name": "login", "match": {"prefix": "/login/"},
         "lockout": {"keys": ["client_ip"], "failures": 3, "window_seconds": 60, "block_seconds": 2,
                     "upstream_statuses": [401]}},
        # Lockout by address and by the JSON body's user name.
        {"name": "login-body", "match": {"methods": ["POST"], "path": "/login-body"},
         "lockout": {"keys": ["client_ip", "body:username"], "failures": 3, "window_seconds": 60,
                     "block_seconds": 2, "upstream_statuses": [401]}},
    ],
}


@pytest.fixture(scope="module")
def rl2(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, concurrency=2)


@pytest.fixture(scope="module")
def rl4(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, concurrency=4)


# ---------------------------------------------------------------------------------------------
# Helpers


def rl_counters(envoy: harness.Envoy, route: str, limit_name: str) -> dict[str, int]:
    """Every outcome counter of one limit, by outcome."""
    prefix = f"meshguard.ratelimit.{route}.{limit_name}."
    out: dict[str, int] = {}
    for name, value in envoy.stats("meshguard\\.ratelimit\\.").items():
        i = name.find(prefix)
        if i != -1:
            out[name[i + len(prefix):]] = value
    return out


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after) if after.get(k, 0) != before.get(k, 0)}


def burst(
    envoy: harness.Envoy,
    method: str,
    path: str,
    total: int,
    headers: Mapping[str, str],
    *,
    parallel: int = PARALLEL,
    body: bytes | None = None,
) -> list[harness.Response]:
    """`total` requests from `parallel` threads, each on its own keep-alive connection, all released
    at once by a barrier. Each request carries its own x-request-id (`<burst id>-<n>`)."""
    burst_id = rid("burst")
    numbers = iter(range(total))
    lock = threading.Lock()
    start = threading.Barrier(parallel)
    results: list[harness.Response] = []

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=30)
        conn.connect()
        try:
            start.wait(timeout=30)
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                all_headers = {**headers, "x-request-id": f"{burst_id}-{n}"}
                if body is not None:
                    all_headers["content-length"] = str(len(body))
                conn.request(method, path, body=body, headers=all_headers)
                resp = conn.getresponse()
                data = resp.read()
                r = harness.Response(resp.status, list(resp.getheaders()), data)
                with lock:
                    results.append(r)
                if resp.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=30)
        finally:
            conn.close()

    with ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(run) for _ in range(parallel)]
        for f in futures:
            f.result()
    assert len(results) == total
    return results


def statuses(responses: Iterable[harness.Response]) -> Counter:
    return Counter(r.status for r in responses)


def retry_after(resp: harness.Response) -> int:
    value = resp.header("retry-after")
    assert value is not None and re.fullmatch(r"[0-9]+", value), f"Retry-After {value!r} is not integer seconds"
    return int(value)


def parse_sf_list(value: str) -> dict[str, dict[str, int]]:
    """`"a";q=5;w=10, "b";r=1;t=2` -> {"a": {"q": 5, "w": 10}, "b": {...}} (integer params only)."""
    out: dict[str, dict[str, int]] = {}
    for member in value.split(","):
        m = re.fullmatch(r'\s*"([^"\\]*)"((?:;[a-z]+=[0-9]+)*)\s*', member)
        assert m, f"not a structured-field list member: {member!r} in {value!r}"
        params = dict(p.split("=") for p in m.group(2).split(";")[1:])
        out[m.group(1)] = {k: int(v) for k, v in params.items()}
    return out


def get(envoy: harness.Envoy, path: str, **headers: str) -> harness.Response:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    hdrs.setdefault("x-request-id", rid("req"))
    return envoy.request("GET", path, headers=hdrs)


# ---------------------------------------------------------------------------------------------
# Exactness across workers


@pytest.mark.parametrize("workers", [2, 4])
def test_burst_admits_exactly_the_limit_across_workers(request, upstream, workers):
    envoy: harness.Envoy = request.getfixturevalue(f"rl{workers}")
    key = rid(f"exact{workers}")
    before_cx = worker_connections(envoy)
    before = rl_counters(envoy, "exact", "per-key")

    responses = burst(envoy, "GET", "/exact/item", 3 * EXACT_LIMIT, {"x-api-key": key})

    assert statuses(responses) == {200: EXACT_LIMIT, 429: 2 * EXACT_LIMIT}
    assert len(upstream_records(upstream, key, header="x-api-key")) == EXACT_LIMIT
    for r in responses:
        if r.status == 429:
            assert_problem(r, 429, "rate_limited")
    # Every request is counted once. A slot whose CAS retries ran out refuses (`contended`) rather
    # than admit unchecked; that is allowed, and does not change the admitted count.
    counted = delta(before, rl_counters(envoy, "exact", "per-key"))
    assert counted.get("allowed") == EXACT_LIMIT
    assert counted.get("limited", 0) + counted.get("contended", 0) == 2 * EXACT_LIMIT
    assert set(counted) <= {"allowed", "limited", "contended"}, counted
    # The connections were spread over more than one worker (each with its own VM).
    grew = {w for w, n in worker_connections(envoy).items() if n > before_cx.get(w, 0)}
    assert len(grew) >= 2, f"all connections landed on one worker: {worker_connections(envoy)}"


def test_parallel_bursts_on_distinct_keys_each_get_exactly_the_limit(rl2, upstream):
    keys = [rid("exact-multi") for _ in range(4)]
    results: dict[str, list[harness.Response]] = {}

    def one(key: str) -> None:
        results[key] = burst(rl2, "GET", "/exact/m", 2 * EXACT_LIMIT, {"x-api-key": key}, parallel=8)

    threads = [threading.Thread(target=one, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for key in keys:
        assert statuses(results[key]) == {200: EXACT_LIMIT, 429: EXACT_LIMIT}, key
        assert len(upstream_records(upstream, key, header="x-api-key")) == EXACT_LIMIT


# ---------------------------------------------------------------------------------------------
# Refill and Retry-After


def test_bucket_refills_after_the_retry_after_wait(rl2):
    key = rid("refill")
    assert [get(rl2, "/refill/x", x_api_key=key).status for _ in range(2)] == [200, 200]
    refused = get(rl2, "/refill/x", x_api_key=key)
    assert_problem(refused, 429, "rate_limited")
    wait = retry_after(refused)
    # One unit every 500 ms: the wait, rounded up to whole seconds, is exactly 1.
    assert wait == 1
    time.sleep(wait)
    assert get(rl2, "/refill/x", x_api_key=key).status == 200
    # The refill is bounded by the burst (2): a quick run of requests is refused again.
    seen = [get(rl2, "/refill/x", x_api_key=key).status for _ in range(4)]
    assert 429 in seen


def test_retry_after_and_ratelimit_headers_on_429(rl2, upstream):
    key = rid("hdr429")
    for _ in range(5):
        assert get(rl2, "/headers/a", x_api_key=key).status == 200
    refused = get(rl2, "/headers/a", x_api_key=key)
    assert_problem(refused, 429, "rate_limited")
    # 5 per 10 s: one unit every 2 s, so the next request fits within 2 s (never 0).
    assert 1 <= retry_after(refused) <= 2
    assert parse_sf_list(refused.header("ratelimit-policy") or "") == {"hdr": {"q": 5, "w": 10}}
    rate = parse_sf_list(refused.header("ratelimit") or "")
    assert set(rate) == {"hdr"} and rate["hdr"]["r"] == 0
    assert 9 <= rate["hdr"]["t"] <= 10  # seconds until the bucket is full again
    assert len(upstream_records(upstream, key, header="x-api-key")) == 5


def test_ratelimit_headers_on_allowed_responses(rl2):
    key = rid("hdr200")
    for i in range(1, 4):
        resp = get(rl2, "/headers/b", x_api_key=key)
        assert resp.status == 200
        assert parse_sf_list(resp.header("ratelimit-policy") or "") == {"hdr": {"q": 5, "w": 10}}
        rate = parse_sf_list(resp.header("ratelimit") or "")["hdr"]
        assert rate["r"] == 5 - i
        assert 2 * i - 1 <= rate["t"] <= 2 * i
        assert resp.header("retry-after") is None


def test_allowed_responses_carry_no_ratelimit_headers_unless_configured(rl2):
    resp = get(rl2, "/exact/plain", x_api_key=rid("noheaders"))
    assert resp.status == 200
    assert resp.header("ratelimit") is None and resp.header("ratelimit-policy") is None


# ---------------------------------------------------------------------------------------------
# Keys


def test_api_keys_have_separate_buckets(rl2):
    a, b = rid("key-a"), rid("key-b")
    assert [get(rl2, "/keys/x", x_api_key=a).status for _ in range(4)] == [200, 200, 200, 429]
    assert [get(rl2, "/keys/x", x_api_key=b).status for _ in range(4)] == [200, 200, 200, 429]
    # A request without the header is keyed on its client address instead: a bucket of its own.
    assert get(rl2, "/keys/x", x_forwarded_for=next_ip()).status == 200


def test_client_ip_from_trusted_forwarded_hop_has_separate_buckets(rl2, upstream):
    a, b = next_ip(), next_ip()
    assert [get(rl2, "/per-ip/x", x_forwarded_for=a).status for _ in range(4)] == [200, 200, 200, 429]
    # Another address has its own bucket.
    assert get(rl2, "/per-ip/x", x_forwarded_for=b).status == 200
    # Entries left of the trusted hop are the client's own words: ignored, so `a` is still limited.
    spoof = f"{next_ip()}, {a}"
    assert_problem(get(rl2, "/per-ip/x", x_forwarded_for=spoof), 429, "rate_limited")
    # Without the header the connection address (127.0.0.1) is the key: a bucket of its own.
    assert get(rl2, "/per-ip/x").status == 200


def test_key_flood_does_not_reset_an_active_abusers_bucket(rl2):
    abuser = rid("abuser")
    assert [get(rl2, "/flood/f", x_api_key=abuser).status for _ in range(4)] == [200, 200, 200, 429]
    before = rl_counters(rl2, "flood", "small")
    flood = [rid("flood") for _ in range(200)]
    admitted = sum(1 for r in burst_keys(rl2, "/flood/f", flood) if r.status == 200)
    # The table has 2 slots of 4 ways (max_keys 8). Flood keys can take the idle ways, then share
    # each slot's overflow bucket (burst 3): the flood as a whole is limited, never waved through.
    assert admitted <= 2 * (4 + 3), admitted
    after = rl_counters(rl2, "flood", "small")
    assert after.get("limited", 0) - before.get("limited", 0) == len(flood) - admitted
    # The abuser's bucket was neither evicted nor reset.
    for _ in range(3):
        assert_problem(get(rl2, "/flood/f", x_api_key=abuser), 429, "rate_limited")


def burst_keys(envoy: harness.Envoy, path: str, keys: list[str]) -> list[harness.Response]:
    """One request per key, from PARALLEL threads."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda k: get(envoy, path, x_api_key=k), keys))


# ---------------------------------------------------------------------------------------------
# Report mode, cost, several limits


def test_report_mode_limit_blocks_nothing_and_counts_would_be_refusals(rl2, upstream):
    key = rid("report")
    before = rl_counters(rl2, "report", "shadow")
    route_before = {d: counter(rl2, f"meshguard.route.report.{d}") for d in ("allow", "deny", "report")}
    ids = [rid("report-req") for _ in range(10)]
    for request_id in ids:
        assert get(rl2, "/report/x", x_api_key=key, x_request_id=request_id).status == 200
    assert len(upstream_records(upstream, key, header="x-api-key")) == 10
    assert delta(before, rl_counters(rl2, "report", "shadow")) == {"allowed": 3, "report_limited": 7}
    route_after = {d: counter(rl2, f"meshguard.route.report.{d}") for d in ("allow", "deny", "report")}
    assert {d: route_after[d] - route_before[d] for d in route_after} == {"allow": 3, "deny": 0, "report": 7}
    # One report audit line per would-be refusal, none for the first three.
    for request_id in ids[3:]:
        rec = rl2.wait_audit(request_id=request_id, decision="report")
        assert (rec["reason"], rec["route"], rec["status"]) == ("rate_limited", "report", 0)
        assert "shadow" in rec.get("detail", "")
    assert not [r for r in rl2.audit_lines() if r.get("request_id") in ids[:3]]


def test_cost_charges_several_units_per_request(rl2):
    key = rid("cost")
    remaining = []
    for _ in range(3):
        resp = get(rl2, "/cost/x", x_api_key=key)
        assert resp.status == 200
        remaining.append(parse_sf_list(resp.header("ratelimit") or "")["units"]["r"])
    assert remaining == [7, 4, 1]
    refused = get(rl2, "/cost/x", x_api_key=key)  # 1 unit left, 3 needed
    assert_problem(refused, 429, "rate_limited")
    # Two more units are needed at one per 360 s: the wait is 720 s, give or take a second.
    assert 719 <= retry_after(refused) <= 720


def test_refusal_by_a_later_limit_refunds_the_earlier_one(rl2):
    key, user = rid("multi-key"), rid("multi-user")
    before = {n: rl_counters(rl2, "multi", n) for n in ("wide", "narrow")}
    # `narrow` (3 per user) refuses the 4th to 8th request; `wide` (10 per key) charged each first,
    # then refunded: a request's outcome on `wide` is either allowed or refunded.
    got = [get(rl2, "/multi/x", x_api_key=key, x_user=user).status for _ in range(8)]
    assert got == [200] * 3 + [429] * 5
    assert delta(before["wide"], rl_counters(rl2, "multi", "wide")) == {"allowed": 3, "refunded": 5}
    assert delta(before["narrow"], rl_counters(rl2, "multi", "narrow")) == {"allowed": 3, "limited": 5}
    # The refunds are real: the key has 7 of its 10 units left, used here by other users.
    others = [get(rl2, "/multi/x", x_api_key=key, x_user=rid("other")).status for _ in range(8)]
    assert others == [200] * 7 + [429]
    last = rl_counters(rl2, "multi", "wide")
    assert last.get("limited", 0) - before["wide"].get("limited", 0) == 1


def test_skipped_outcome_when_an_earlier_limit_refuses(rl2):
    key = rid("skip")
    for i in range(10):
        assert get(rl2, "/multi/s", x_api_key=key, x_user=f"{key}-u{i}").status == 200
    before = rl_counters(rl2, "multi", "narrow")
    assert_problem(get(rl2, "/multi/s", x_api_key=key, x_user=rid("u")), 429, "rate_limited")
    assert delta(before, rl_counters(rl2, "multi", "narrow")) == {"skipped": 1}


# ---------------------------------------------------------------------------------------------
# Metrics and audit


def test_every_outcome_counter_is_defined_per_route_and_limit(rl2):
    outcomes = {"allowed", "refunded", "limited", "report_limited", "contended", "store_error", "skipped"}
    for route, name in (("exact", "per-key"), ("multi", "wide"), ("multi", "narrow"),
                        ("unnamed", "header_x-api-key")):
        assert set(rl_counters(rl2, route, name)) == outcomes, (route, name)
    text = rl2.prometheus()
    assert re.search(r"^(?:\w+_)?meshguard_ratelimit_exact_per_key_allowed(?:\{[^}]*\})? \d+$", text, re.M)


def test_unnamed_limit_is_counted_under_its_key_text(rl2):
    key = rid("unnamed")
    before = rl_counters(rl2, "unnamed", "header_x-api-key")
    assert [get(rl2, "/unnamed/x", x_api_key=key).status for _ in range(2)] == [200, 429]
    assert delta(before, rl_counters(rl2, "unnamed", "header_x-api-key")) == {"allowed": 1, "limited": 1}


def test_refusal_is_audited_and_counted_without_the_key_value(rl2):
    key = rid("audit-secret-key")
    get(rl2, "/unnamed/a", x_api_key=key)
    request_id = rid("audit")
    before = counter(rl2, "meshguard.reason.rate_limited.deny")
    route_before = counter(rl2, "meshguard.route.unnamed.deny")
    resp = get(rl2, "/unnamed/a", x_api_key=key, x_request_id=request_id)
    body = assert_problem(resp, 429, "rate_limited")
    assert body["request_id"] == request_id
    rec = rl2.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"], rec["status"], rec["route"]) == ("deny", "rate_limited", 429, "unnamed")
    assert "header:x-api-key" in rec.get("detail", "")
    assert counter(rl2, "meshguard.reason.rate_limited.deny") == before + 1
    assert counter(rl2, "meshguard.route.unnamed.deny") == route_before + 1
    assert key not in rl2.log_text() and key not in resp.body.decode()


# ---------------------------------------------------------------------------------------------
# Lockout driven by upstream 401s


def login(envoy: harness.Envoy, ip: str, status: int | None = None, request_id: str | None = None) -> harness.Response:
    headers = {"x-forwarded-for": ip, "x-request-id": request_id or rid("login")}
    if status:
        headers["x-echo-status"] = str(status)
    return envoy.request("GET", "/login/x", headers=headers)


def test_upstream_401s_lock_the_client_then_the_lock_expires(rl2, upstream):
    ip, other = next_ip(), next_ip()
    locked_before = counter(rl2, "meshguard.reason.locked_out.deny")
    ids = [rid("fail") for _ in range(3)]
    for request_id in ids:
        assert login(rl2, ip, 401, request_id).status == 401
    # The third failure locked the address; the audit line names the key expression only.
    rec = rl2.wait_audit(request_id=ids[-1], decision="lock")
    assert (rec["reason"], rec["route"], rec["status"]) == ("locked_out", "login", 0)
    assert "client_ip" in rec["detail"] and ip not in json.dumps(rec)
    assert not [r for r in rl2.audit_lines() if r.get("request_id") in ids[:2] and r["decision"] == "lock"]

    probe_id = rid("locked")
    refused = login(rl2, ip, request_id=probe_id)
    assert_problem(refused, 429, "locked_out")
    wait = retry_after(refused)
    assert 1 <= wait <= 2  # block_seconds 2
    assert not any(r["headers"].get("x-request-id") == probe_id for r in upstream.requests)
    assert counter(rl2, "meshguard.reason.locked_out.deny") == locked_before + 1
    # Another address is not locked.
    assert login(rl2, other).status == 200
    # Failures while locked never reach the upstream and do not extend the lock.
    assert login(rl2, ip, 401).status == 429
    time.sleep(wait)
    assert login(rl2, ip).status == 200
    # The count started over: one more failure does not lock.
    assert login(rl2, ip, 401).status == 401
    assert login(rl2, ip).status == 200


def test_fewer_failures_than_the_threshold_never_lock(rl2):
    ip = next_ip()
    for _ in range(2):
        assert login(rl2, ip, 401).status == 401
        assert login(rl2, ip, 403).status == 403  # not in upstream_statuses
        assert login(rl2, ip, 200).status == 200
    assert login(rl2, ip).status == 200


def post_login(envoy: harness.Envoy, ip: str, username: str, status: int | None = None,
               request_id: str | None = None) -> harness.Response:
    headers = {"x-forwarded-for": ip, "content-type": "application/json",
               "x-request-id": request_id or rid("plogin")}
    if status:
        headers["x-echo-status"] = str(status)
    body = json.dumps({"username": username, "password": "pw-secret-value"}).encode()
    return envoy.request("POST", "/login-body", headers=headers, body=body)


def test_body_username_lockout_holds_across_addresses(rl2, upstream):
    user = rid("alice")
    ids = [rid("pfail") for _ in range(3)]
    # Three failures for one user from three addresses: the user is locked, the addresses are not.
    for request_id in ids:
        assert post_login(rl2, next_ip(), user, 401, request_id).status == 401
    rec = rl2.wait_audit(request_id=ids[-1], decision="lock")
    assert "body:username" in rec["detail"] and "client_ip" not in rec["detail"]
    probe_id = rid("plocked")
    refused = post_login(rl2, next_ip(), user, request_id=probe_id)
    assert_problem(refused, 429, "locked_out")
    assert 1 <= retry_after(refused) <= 2
    # The headers may have gone on before the body was checked (the upstream then sees a request
    # cut short), but no body byte reached the upstream.
    assert all(r["body_len"] == 0 for r in upstream.requests if r["headers"].get("x-request-id") == probe_id)
    assert post_login(rl2, next_ip(), rid("bob")).status == 200
    log = rl2.log_text()
    assert user not in log and "pw-secret-value" not in log


def test_credential_stuffing_from_one_address_locks_the_address(rl2):
    ip = next_ip()
    ids = [rid("stuff") for _ in range(3)]
    for request_id in ids:
        assert post_login(rl2, ip, rid("victim"), 401, request_id).status == 401
    rec = rl2.wait_audit(request_id=ids[-1], decision="lock")
    assert "client_ip" in rec["detail"] and "body:username" not in rec["detail"]
    assert_problem(post_login(rl2, ip, rid("next-victim")), 429, "locked_out")
    # The users themselves each had one failure: from another address they are fine.
    assert post_login(rl2, next_ip(), rid("victim")).status == 200


def test_lockout_expires_for_body_keys(rl2):
    user, ip = rid("carol"), next_ip()
    for _ in range(3):
        assert post_login(rl2, next_ip(), user, 401).status == 401
    refused = post_login(rl2, ip, user)
    assert_problem(refused, 429, "locked_out")
    time.sleep(retry_after(refused))
    assert post_login(rl2, ip, user).status == 200


# ---------------------------------------------------------------------------------------------
# JWT-keyed limits and lockout by meshguard's own 401s (need `routes[].jwt`)

# A fixed Ed25519 key (deterministic tests): private scalar bytes 0..31.
IDP = harness.TokenIssuer("https://issuer.test", "api.test", Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
                          kid="k1", alg="EdDSA", lifetime_s=600)


def token(sub: str, *, valid: bool = True) -> str:
    signed = IDP.token(sub=sub)
    if valid:
        return signed
    head, payload, sig = signed.split(".")
    bad = base64.urlsafe_b64encode(bytes(b ^ 1 for b in base64.urlsafe_b64decode(sig + "=="))).rstrip(b"=").decode()
    return f"{head}.{payload}.{bad}"


def jwt_config() -> dict[str, Any]:
    jwt_rule = {"providers": ["main"]}
    return {
        "client_ip": {"source": "x_forwarded_for", "trusted_hops": 1},
        "jwt_providers": {"main": {"issuer": IDP.issuer, "audiences": [IDP.audience], "algorithms": ["EdDSA"],
                                   "local_jwks": {"inline_string": IDP.jwks()}}},
        "routes": [
            {"name": "per-user", "match": {"prefix": "/per-user/"}, "jwt": jwt_rule,
             "rate_limits": [limit("sub", "jwt:sub", 3, HOUR)]},
            {"name": "jwt-login", "match": {"prefix": "/jwt-login/"}, "jwt": jwt_rule,
             "lockout": {"keys": ["client_ip", "header:x-device"], "failures": 3, "window_seconds": 60,
                         "block_seconds": 2}},
        ],
    }


@pytest.fixture(scope="module")
def rl_jwt(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=jwt_config(), wasm=meshguard_wasm, concurrency=2)


def test_jwt_sub_keys_have_separate_buckets_exactly(rl_jwt):
    alice, bob = token(rid("alice")), token(rid("bob"))
    got = burst(rl_jwt, "GET", "/per-user/x", 12, {"authorization": f"Bearer {alice}"})
    assert statuses(got) == {200: 3, 429: 9}
    assert [get(rl_jwt, "/per-user/x", authorization=f"Bearer {bob}").status for _ in range(4)] == [200, 200, 200, 429]


def test_meshguard_401s_lock_the_client_then_the_lock_expires(rl_jwt):
    ip = next_ip()
    ids = [rid("jwt-fail") for _ in range(3)]
    for request_id in ids:
        resp = get(rl_jwt, "/jwt-login/x", x_forwarded_for=ip, x_request_id=request_id,
                   authorization=f"Bearer {token('mallory', valid=False)}")
        assert resp.status == 401
    rec = rl_jwt.wait_audit(request_id=ids[-1], decision="lock")
    assert "client_ip" in rec["detail"]
    good = f"Bearer {token('mallory')}"
    refused = get(rl_jwt, "/jwt-login/x", x_forwarded_for=ip, authorization=good)
    assert_problem(refused, 429, "locked_out")
    assert get(rl_jwt, "/jwt-login/x", x_forwarded_for=next_ip(), authorization=good).status == 200
    time.sleep(retry_after(refused))
    assert get(rl_jwt, "/jwt-login/x", x_forwarded_for=ip, authorization=good).status == 200


def test_meshguard_401s_lock_a_header_key_across_addresses(rl_jwt):
    device = rid("device")
    ids = [rid("jwt-dev-fail") for _ in range(3)]
    for request_id in ids:
        resp = get(rl_jwt, "/jwt-login/x", x_forwarded_for=next_ip(), x_device=device, x_request_id=request_id)
        assert_problem(resp, 401, "jwt_missing")
    rec = rl_jwt.wait_audit(request_id=ids[-1], decision="lock")
    assert "header:x-device" in rec["detail"] and device not in json.dumps(rec)
    good = f"Bearer {token('dave')}"
    assert_problem(get(rl_jwt, "/jwt-login/x", x_forwarded_for=next_ip(), x_device=device, authorization=good),
                   429, "locked_out")
    assert get(rl_jwt, "/jwt-login/x", x_forwarded_for=next_ip(), x_device=rid("device"),
               authorization=good).status == 200
