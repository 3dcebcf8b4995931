"""Foundation behaviour of the meshguard module in a real Envoy: route matching, the 404/405/400
problem replies, path normalisation, report mode, audit lines, metrics and config refusal.

One Envoy per plugin config, shared by the module's tests. Every request carries its own
x-request-id, so a test finds its own audit line and proves its own request did (not) reach the
upstream, whatever other tests sent before."""

from __future__ import annotations

import json
import re

import httpx
import pytest

import harness
from harness import assert_problem, counter, reached_upstream, rid

MAIN = {
    "mode": "enforce",
    "unmatched": "deny",
    "audit": {"log_allows": False},
    "routes": [
        {"name": "health", "match": {"methods": ["GET"], "path": "/healthz"}},
        {"name": "public", "match": {"prefix": "/public/"}},
        {"name": "get-user", "match": {"methods": ["GET"], "path": "/users/{id}"}},
        # Plaintext requests fail `require_mtls`: a denial decided inside a matched route (405 and
        # 404 are decided before any route applies, under `_unmatched`, in the global mode).
        {"name": "mtls-only", "match": {"methods": ["GET"], "path": "/mtls/{id}"}, "peers": {"require_mtls": True}},
        {"name": "beta", "match": {"prefix": "/beta/"}, "mode": "report", "peers": {"require_mtls": True}},
    ],
}
ALLOW_UNMATCHED = {
    "unmatched": "allow",
    "audit": {"log_allows": True},
    "routes": [{"name": "public", "match": {"prefix": "/public/"}}],
}
REPORT_ALL = {
    "mode": "report",
    "unmatched": "deny",
    "routes": [{"name": "get-user", "match": {"methods": ["GET"], "path": "/users/{id}"}}],
}

AUDIT_KEYS = {"kind", "ts_ms", "request_id", "route", "method", "path", "decision", "reason", "status"}


@pytest.fixture(scope="module")
def mg(module_envoys, meshguard_wasm) -> harness.Envoy:
    # http2: plaintext HTTP/2 with prior knowledge next to HTTP/1.1 (codec AUTO).
    return module_envoys(plugin_config=MAIN, wasm=meshguard_wasm, http2=True)


@pytest.fixture(scope="module")
def mg_allow(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=ALLOW_UNMATCHED, wasm=meshguard_wasm)


@pytest.fixture(scope="module")
def mg_report(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=REPORT_ALL, wasm=meshguard_wasm)


@pytest.fixture(scope="module")
def baseline(module_envoys) -> harness.Envoy:
    return module_envoys(with_wasm=False)


# ---------------------------------------------------------------------------------------------
# Routing and replies


def test_allowed_prefix_route_reaches_upstream_with_exact_body(mg, upstream):
    request_id = rid("allow")
    body = bytes(range(256)) + b"\r\n\x00end"
    resp = mg.request("POST", "/public/upload?x=1", headers={"x-request-id": request_id}, body=body)
    assert resp.status == 200
    echo = resp.echo()
    assert echo["method"] == "POST"
    assert echo["path"] == "/public/upload?x=1"
    assert echo["body"] == body
    assert reached_upstream(upstream, request_id)


def test_template_route_allows_its_method(mg):
    resp = mg.request("GET", "/users/42", headers={"x-request-id": rid("user")})
    assert resp.status == 200
    assert resp.echo()["path"] == "/users/42"


def test_exact_path_route_does_not_match_longer_paths(mg):
    assert mg.request("GET", "/healthz").status == 200
    request_id = rid("health-extra")
    assert_problem(mg.request("GET", "/healthz/extra", headers={"x-request-id": request_id}),
                   404, "route_not_found", request_id)


def test_unmatched_path_is_404_problem_and_never_reaches_upstream(mg, upstream):
    request_id = rid("unmatched")
    resp = mg.request("GET", "/nowhere/secret-segment?q=query-secret", headers={"x-request-id": request_id})
    assert_problem(resp, 404, "route_not_found", request_id)
    text = resp.body.decode()
    assert "secret-segment" not in text and "query-secret" not in text
    assert not reached_upstream(upstream, request_id)


def test_unmatched_allow_lets_the_request_through(mg_allow, upstream):
    request_id = rid("unmatched-allow")
    resp = mg_allow.request("GET", "/nowhere", headers={"x-request-id": request_id})
    assert resp.status == 200
    assert resp.echo()["path"] == "/nowhere"
    assert reached_upstream(upstream, request_id)


def test_method_mismatch_is_405_with_allow_header(mg, upstream):
    request_id = rid("method")
    resp = mg.request("DELETE", "/users/42", headers={"x-request-id": request_id})
    assert_problem(resp, 405, "method_not_allowed", request_id)
    allow = [m.strip() for m in (resp.header("allow") or "").split(",")]
    assert "GET" in allow
    assert not reached_upstream(upstream, request_id)


def test_denial_over_http2(mg):
    request_id = rid("h2")
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        denied = client.get(mg.url + "/nowhere", headers={"x-request-id": request_id})
        allowed = client.get(mg.url + "/public/h2")
    assert denied.http_version == "HTTP/2"
    assert denied.status_code == 404
    assert denied.headers["content-type"].startswith("application/problem+json")
    assert denied.json()["reason"] == "route_not_found"
    assert denied.json()["request_id"] == request_id
    assert allowed.status_code == 200


# ---------------------------------------------------------------------------------------------
# Path normalisation (paths are sent byte for byte; clients would normalise them)


def test_dot_dot_cannot_escape_a_prefix_route(mg, upstream):
    request_id = rid("dotdot")
    resp = mg.request("GET", "/public/../admin", headers={"x-request-id": request_id})
    assert_problem(resp, 404, "route_not_found", request_id)
    assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("path", ["/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/.%2e/admin"])
def test_encoded_dot_dot_cannot_escape_a_prefix_route(mg, upstream, path):
    request_id = rid("enc-dotdot")
    resp = mg.request("GET", path, headers={"x-request-id": request_id})
    assert resp.status in (400, 404), resp.status
    assert resp.json()["reason"] in ("path_invalid", "route_not_found")
    assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("path", ["/users//1", "/users/./1", "/users/x/../1"])
def test_equivalent_paths_match_the_template(mg, path):
    assert mg.request("GET", path).status == 200


@pytest.mark.parametrize("path", ["/users/1%2F2", "/public/a%2fb", "/public/a%2F..%2F..%2Fadmin"])
def test_encoded_slash_is_400_path_invalid(mg, upstream, path):
    request_id = rid("enc-slash")
    resp = mg.request("GET", path, headers={"x-request-id": request_id})
    assert_problem(resp, 400, "path_invalid", request_id)
    assert not reached_upstream(upstream, request_id)


# ---------------------------------------------------------------------------------------------
# Report mode


def test_route_in_report_mode_passes_a_would_be_denial(mg, baseline, upstream):
    """The beta route needs mTLS; in report mode a plaintext request still goes through."""
    headers = {"x-echo-status": "202"}
    expected = baseline.request("POST", "/beta/feature", headers=headers).status
    request_id = rid("route-report")
    resp = mg.request("POST", "/beta/feature", headers={**headers, "x-request-id": request_id})
    assert resp.status == expected == 202
    assert reached_upstream(upstream, request_id)
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"], rec["route"]) == ("report", "peer_not_mtls", "beta")
    assert rec["status"] == 0  # the request went on


def test_global_report_mode_passes_unmatched_and_method_mismatch(mg_report, baseline, upstream):
    for method, path, reason in (("GET", "/nowhere", "route_not_found"), ("POST", "/users/7", "method_not_allowed")):
        expected = baseline.request(method, path).status
        request_id = rid("global-report")
        resp = mg_report.request(method, path, headers={"x-request-id": request_id})
        assert resp.status == expected
        assert reached_upstream(upstream, request_id)
        rec = mg_report.wait_audit(request_id=request_id)
        assert (rec["decision"], rec["reason"]) == ("report", reason)


# ---------------------------------------------------------------------------------------------
# Audit lines


def test_each_denial_logs_exactly_one_audit_line_without_secrets(mg):
    request_id = rid("audit")
    resp = mg.request(
        "GET",
        "/mtls/42?access_token=qs-secret-value",
        headers={"x-request-id": request_id, "authorization": "Bearer hdr-secret-token"},
    )
    assert_problem(resp, 403, "peer_not_mtls", request_id)
    rec = mg.wait_audit(request_id=request_id)
    assert AUDIT_KEYS <= set(rec)
    assert rec["kind"] == "meshguard.audit"
    assert isinstance(rec["ts_ms"], int) and rec["ts_ms"] > 0
    assert rec["route"] == "mtls-only"
    assert rec["method"] == "GET"
    assert rec["path"] == "/mtls/{id}"  # the template, not the raw path
    assert (rec["decision"], rec["reason"], rec["status"]) == ("deny", "peer_not_mtls", 403)
    assert [r["request_id"] for r in mg.audit_lines()].count(request_id) == 1
    log = mg.log_text()
    assert "qs-secret-value" not in log and "hdr-secret-token" not in log


def test_method_mismatch_audit_is_under_unmatched(mg):
    request_id = rid("audit-405")
    assert mg.request("DELETE", "/users/42?token=qs-secret-405", headers={"x-request-id": request_id}).status == 405
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["route"], rec["decision"], rec["reason"], rec["status"]) == (
        "_unmatched", "deny", "method_not_allowed", 405)
    assert "qs-secret-405" not in mg.log_text()


def test_unmatched_denial_audit_names_no_raw_path_or_query(mg):
    request_id = rid("audit-unmatched")
    mg.request("GET", "/private/thing?password=pw-secret", headers={"x-request-id": request_id})
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"], rec["status"], rec["route"]) == ("deny", "route_not_found", 404, "_unmatched")
    assert "pw-secret" not in json.dumps(rec) and "?" not in rec["path"]
    assert "pw-secret" not in mg.log_text()


def test_allowed_requests_are_not_audited_unless_configured(mg, mg_allow):
    quiet = rid("quiet-allow")
    assert mg.request("GET", "/public/quiet", headers={"x-request-id": quiet}).status == 200
    # Envoy logs in order on its one worker: once a later denial's line is there, the allow's would be too.
    marker = rid("marker")
    mg.request("GET", "/nowhere", headers={"x-request-id": marker})
    mg.wait_audit(request_id=marker)
    assert quiet not in [r["request_id"] for r in mg.audit_lines()]

    loud = rid("loud-allow")
    assert mg_allow.request("GET", "/public/loud", headers={"x-request-id": loud}).status == 200
    rec = mg_allow.wait_audit(request_id=loud)
    assert (rec["decision"], rec["route"], rec["method"]) == ("allow", "public", "GET")


# ---------------------------------------------------------------------------------------------
# Metrics


def test_config_accepted_counter(mg):
    assert counter(mg, "meshguard.config.accepted") >= 1


@pytest.mark.parametrize(
    "method,path,counters",
    [
        ("GET", "/public/count", ["meshguard.route.public.allow"]),
        ("GET", "/not-routed", ["meshguard.route._unmatched.deny", "meshguard.reason.route_not_found.deny"]),
        ("DELETE", "/users/1", ["meshguard.route._unmatched.deny", "meshguard.reason.method_not_allowed.deny"]),
        ("GET", "/mtls/1", ["meshguard.route.mtls-only.deny", "meshguard.reason.peer_not_mtls.deny"]),
        ("POST", "/beta/x", ["meshguard.route.beta.report", "meshguard.reason.peer_not_mtls.report"]),
        ("GET", "/users/1%2F2", ["meshguard.reason.path_invalid.deny"]),
    ],
)
def test_each_decision_counts_once_by_route_and_reason(mg, method, path, counters):
    before = {n: counter(mg, n) for n in counters}
    mg.request(method, path)
    assert {n: counter(mg, n) - before[n] for n in counters} == {n: 1 for n in counters}


def test_prometheus_exposes_meshguard_counters(mg):
    mg.request("GET", "/public/prom")
    mg.request("GET", "/not-routed-prom")
    text = mg.prometheus()

    def value(metric: str) -> int | None:
        m = re.search(rf"^(?:\w+_)?{metric}(?:\{{[^}}]*\}})? (\d+)$", text, re.M)
        return int(m.group(1)) if m else None

    assert (value("meshguard_config_accepted") or 0) >= 1
    assert (value("meshguard_route_public_allow") or 0) >= 1
    assert (value("meshguard_route__unmatched_deny") or 0) >= 1
    assert (value("meshguard_reason_route_not_found_deny") or 0) >= 1


# ---------------------------------------------------------------------------------------------
# Config refusal


BAD_CONFIGS = {
    "unknown-top-level-field": ({"routes": [], "bogus": True}, ["bogus"]),
    "unknown-route-field": (
        {"routes": [{"name": "a", "match": {"prefix": "/"}, "colour": "red"}]},
        ["routes[0]", "colour"],
    ),
    "bad-path-template": (
        {"routes": [{"name": "u", "match": {"path": "/users/{id"}}]},
        ["routes[0].match.path"],
    ),
    "wrong-type": ({"routes": 5}, ["routes"]),
    # A key twice in one object (JSON text: a dict cannot hold it). serde_json would keep the last.
    "duplicate-key": (
        '{"routes": [{"name": "a", "match": {"prefix": "/"}, "mode": "report", "mode": "enforce"}]}',
        ["routes[0].mode", "duplicate"],
    ),
}


def problem_lines(output: str, needles: list[str]) -> list[str]:
    return [line for line in output.splitlines() if all(n in line for n in needles)]


def test_good_config_passes_envoy_validate(meshguard_wasm):
    code, out = harness.validate(MAIN, wasm=meshguard_wasm)
    assert code == 0, out[-3000:]


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_by_envoy_validate_naming_the_field(meshguard_wasm, case):
    config, needles = BAD_CONFIGS[case]
    code, out = harness.validate(config, wasm=meshguard_wasm)
    assert code != 0, out[-3000:]
    lines = problem_lines(out, needles)
    assert lines, f"no line naming {needles}:\n{out[-3000:]}"
    # The module's own line (logged by the VM) carries the JSON path, not just Envoy's summary.
    assert any("[wasm]" in line for line in lines), lines


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_by_offline_validator_in_one_line(offline_validator, case):
    config, needles = BAD_CONFIGS[case]
    code, out = offline_validator(config)
    assert code == 1, out
    assert len(out.splitlines()) == 1, out
    assert all(n in out for n in needles), out


def test_not_json_is_refused(meshguard_wasm):
    code, out = harness.validate("{not json", wasm=meshguard_wasm)
    assert code != 0, out[-3000:]
