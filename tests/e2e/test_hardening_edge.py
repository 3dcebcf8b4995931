"""Hardening at the host edge, in a real Envoy with two workers: no header bytes kill a worker,
forged identity headers never reach the upstream, gRPC callers get gRPC statuses, every denial
says nosniff, merged Host and Authorization headers are judged as what they are.

The upstream is the echo server: it reports exactly which headers reached it. After every batch
of hostile requests the VM must still enforce: new connections (spread over both workers by the
kernel) without a token are still 401 -- not 503 (a dead VM with fail_open false) and not 200 (a
dead VM with fail-open skips every check).
"""

from __future__ import annotations

import json
import socket

import h2.config
import h2.connection
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import harness
from harness import reached_upstream, rid, seen_upstream, worker_connections

ISSUER = "https://issuer.edge.test"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
KID = "edge-1"
IDP = harness.TokenIssuer(ISSUER, None, SIGNING_KEY, kid=KID, alg="ES256")


def token(sub: str = "alice") -> str:
    return IDP.token(sub=sub)


CONFIG = {
    "jwt_providers": {
        "main": {
            "issuer": ISSUER,
            "local_jwks": {"inline_string": IDP.jwks()},
            "forward_payload_header": "x-jwt-payload",
            "claim_to_headers": [{"claim_name": "sub", "header_name": "x-user"}],
        }
    },
    "forward_identity": {"peer_header": "x-peer-spiffe-id", "subject_header": "x-token-subject"},
    "routes": [
        {"name": "admin", "match": {"prefix": "/admin"}, "jwt": {"providers": ["main"]}},
        # Host rule with an open fallback behind it: a merged Host must not fall through.
        {"name": "internal", "match": {"prefix": "/internal", "hosts": ["internal.example"]},
         "jwt": {"providers": ["main"]}},
        {"name": "internal-public", "match": {"prefix": "/internal"}},
        {"name": "keyed", "match": {"prefix": "/keyed"},
         "request": {"headers": [{"name": "x-debug", "forbidden": True}]}},
        {"name": "grpc-auth", "match": {"prefix": "/grpc.Auth/"}, "jwt": {"providers": ["main"]}},
        {"name": "grpc-limited", "match": {"prefix": "/grpc.Limited/"},
         "rate_limits": [{"key": "header:x-client", "requests": 1, "per_seconds": 3600}]},
        {"name": "grpc-small", "match": {"prefix": "/grpc.Small/"}, "request": {"max_body_bytes": 8}},
        {"name": "grpc-getonly", "match": {"methods": ["GET"], "prefix": "/grpc.GetOnly/"}},
        {"name": "grpc-mtls", "match": {"prefix": "/grpc.Mtls/"}, "peers": {"require_mtls": True}},
        {"name": "grpc-checked", "match": {"prefix": "/grpc.Checked/"},
         "request": {"headers": [{"name": "x-tenant", "required": True}]}},
        {"name": "open", "match": {"prefix": "/open/"}},
    ],
}

INJECTED = ("x-user", "x-jwt-payload", "x-peer-spiffe-id", "x-token-subject")


@pytest.fixture(scope="module")
def closed(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, http2=True, concurrency=2, fail_open=False)


@pytest.fixture(scope="module")
def failopen(module_envoys, meshguard_wasm) -> harness.Envoy:
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, http2=True, concurrency=2, fail_open=True)


@pytest.fixture(scope="module")
def rejecting(module_envoys, meshguard_wasm) -> harness.Envoy:
    """Envoy set as envoy/sidecar.yaml ships it: header names with `_` refused by Envoy."""
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, hcm_overrides={
        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"}})


@pytest.fixture(params=["closed", "failopen"])
def mg(request) -> harness.Envoy:
    """Both failure settings: meshguard must never depend on which one is set."""
    return request.getfixturevalue(request.param)


# ---------------------------------------------------------------------------------------------
# Clients that send bytes as they are


def raw_http1(port: int, head: bytes, body: bytes = b"", timeout_s: float = 10.0) -> harness.Response:
    """Sends `head` (request line and headers, without the blank line) byte for byte on a new
    connection, then the body; parses the answer."""
    import http.client

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    try:
        sock.sendall(head + b"\r\nconnection: close\r\n\r\n" + body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return harness.Response(resp.status, list(resp.getheaders()), resp.read())
    finally:
        sock.close()


def get1(port: int, path: str, headers: list[tuple[bytes, bytes]], host: bytes = b"edge.test") -> harness.Response:
    head = b"GET " + path.encode() + b" HTTP/1.1\r\nhost: " + host
    for k, v in headers:
        head += b"\r\n" + k + b": " + v
    return raw_http1(port, head)


def h2_call(port: int, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"",
            method: bytes = b"POST", timeout_s: float = 10.0) -> tuple[dict[str, str], bytes]:
    """One HTTP/2 request (prior knowledge) with header bytes sent unvalidated. Returns the
    response headers and trailers merged into one dict (bytes decoded as Latin-1), and the body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                    normalize_outbound_headers=False, validate_inbound_headers=False)
    conn = h2.connection.H2Connection(cfg)
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    request_headers = [(b":method", method), (b":path", path.encode()), (b":scheme", b"http"),
                       (b":authority", b"edge.test"), *headers]
    conn.send_headers(sid, request_headers, end_stream=not body)
    if body:
        conn.send_data(sid, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    try:
        headers_in, trailers, data = harness.h2_read_response(sock, conn, sid)
    finally:
        sock.close()
    got = {k.decode("latin-1"): v.decode("latin-1") for k, v in [*headers_in, *trailers]}
    return got, data


def assert_enforcing(envoy: harness.Envoy, connections: int = 16, all_workers: bool = False) -> None:
    """The VM still enforces: new connections without a token are all 401 with a problem body,
    and no panic was logged. With `all_workers`, connections go on (up to 64) until every worker
    has answered at least one (the kernel spreads connections over the workers)."""
    before = worker_connections(envoy)
    statuses = []
    sent = 0
    while True:
        r = get1(envoy.port, "/admin/probe", [(b"x-request-id", rid("probe").encode())])
        sent += 1
        statuses.append(r.status)
        if r.status == 401:
            assert r.json()["reason"] == "jwt_missing"
        if sent < connections:
            continue
        after = worker_connections(envoy)
        busy = [w for w in after if after[w] > before.get(w, 0)]
        if not all_workers or len(busy) >= envoy.concurrency:
            break
        assert sent < 64, f"not every worker was probed: {before} -> {after}"
    assert statuses == [401] * sent, statuses
    assert "panic" not in envoy.log_text(), envoy.log_tail(20)


# ---------------------------------------------------------------------------------------------
# Host values and malformed input


OBS_TEXT = [
    (b"user-agent", b"Mozilla/5.0 (caf\xe9)"),
    (b"x-file-name", b"r\xe9sum\xe9 \xff\xfe\x80.pdf"),
    (b"accept-language", b"fr-\xc0\xc1"),
]


def test_obs_text_over_http1_passes_untouched_and_every_worker_still_enforces(mg, upstream):
    before = worker_connections(mg)
    for i in range(16):
        request_id = rid("obs1")
        r = get1(mg.port, f"/open/f{i}", [(b"x-request-id", request_id.encode()), *OBS_TEXT])
        assert r.status == 200, (r.status, r.body[:300])
        seen = seen_upstream(upstream, request_id)
        assert seen is not None
        # The echo server decodes header bytes as Latin-1: the bytes arrived as they were sent.
        assert seen["headers"]["x-file-name"].encode("latin-1") == b"r\xe9sum\xe9 \xff\xfe\x80.pdf"
        # On a checked route the check still applies.
        r = get1(mg.port, "/admin/x", list(OBS_TEXT))
        assert r.status == 401, r.status
    hit = worker_connections(mg)
    # 32 connections: the kernel gave obs-text requests to every worker (odds of not: 2**-31).
    assert all(hit[w] > before.get(w, 0) for w in hit) and len(hit) == mg.concurrency, (before, hit)
    assert_enforcing(mg, all_workers=True)


def test_obs_text_over_http2_passes_untouched_and_every_worker_still_enforces(mg, upstream):
    before = worker_connections(mg)
    for i in range(16):
        request_id = rid("obs2")
        got, _ = h2_call(mg.port, f"/open/h{i}", [(b"x-request-id", request_id.encode()), *OBS_TEXT],
                         method=b"GET")
        assert got.get(":status") == "200", got
        seen = seen_upstream(upstream, request_id)
        assert seen is not None
        assert seen["headers"]["user-agent"].encode("latin-1") == b"Mozilla/5.0 (caf\xe9)"
        got, _ = h2_call(mg.port, "/admin/x", list(OBS_TEXT), method=b"GET")
        assert got.get(":status") == "401", got
    hit = worker_connections(mg)
    # 32 connections: the kernel gave obs-text requests to every worker (odds of not: 2**-31).
    assert all(hit[w] > before.get(w, 0) for w in hit) and len(hit) == mg.concurrency, (before, hit)
    assert_enforcing(mg, all_workers=True)


def test_obs_text_in_a_header_a_check_reads_is_400_never_absent(mg, upstream):
    # Absent, x-debug passes; a Latin-1 x-debug must not be mistaken for an absent header.
    request_id = rid("debug")
    r = get1(mg.port, "/keyed/a", [(b"x-request-id", request_id.encode()), (b"x-debug", b"on\xff")])
    assert r.status == 400
    body = r.json()
    assert body["reason"] == "header_invalid" and body["detail"] == 'header "x-debug" is not valid text'
    assert not reached_upstream(upstream, request_id)
    # A token that is not text is refused, not taken for a missing token.
    got, _ = h2_call(mg.port, "/admin/x", [(b"authorization", b"Bearer \xe9\xe9")], method=b"GET")
    assert got[":status"] == "400"
    assert_enforcing(mg, connections=4)


def test_underscore_spelling_of_a_checked_header_is_refused(closed, upstream):
    request_id = rid("debug-underscore")
    r = get1(closed.port, "/keyed/a", [(b"x-request-id", request_id.encode()), (b"x_debug", b"on")])
    assert r.status == 400
    assert r.json()["detail"] == 'header "x_debug" is ambiguous with "x-debug"'
    assert not reached_upstream(upstream, request_id)


# ---------------------------------------------------------------------------------------------
# Injected headers


FORGED = [
    (b"x_user", b"admin"),
    (b"X_User", b"root"),
    (b"x_jwt_payload", b"eyJzdWIiOiJhZG1pbiJ9"),
    (b"x_peer_spiffe_id", b"spiffe://cluster.local/ns/admin/sa/admin"),
    (b"x-peer_spiffe-id", b"spiffe://evil/x"),
    (b"x_token_subject", b"admin"),
    (b"x-user", b"admin"),
]


@pytest.mark.parametrize("path, with_token", [("/admin/me", True), ("/open/me", False)])
def test_forged_identity_headers_never_reach_the_upstream(closed, upstream, path, with_token):
    request_id = rid("forged")
    headers = [(b"x-request-id", request_id.encode()), *FORGED]
    if with_token:
        headers.append((b"authorization", b"Bearer " + token("alice").encode()))
    r = get1(closed.port, path, headers)
    assert r.status == 200, r.body[:300]
    seen = seen_upstream(upstream, request_id)
    assert seen is not None
    names = set(seen["headers"])
    for name in names:
        folded = name.replace("_", "-")
        if folded in INJECTED:
            assert name in INJECTED, f"forged {name} reached the upstream"
    if with_token:
        assert seen["headers"]["x-user"] == "alice"
        assert seen["headers"]["x-token-subject"] == "alice"
    else:
        assert not names & set(INJECTED), names
    assert_enforcing(closed, connections=4)


def test_forged_identity_over_http2_never_reaches_the_upstream(closed, upstream):
    request_id = rid("forged-h2")
    got, _ = h2_call(closed.port, "/open/me", [(b"x-request-id", request_id.encode()),
                                               (b"x_user", b"admin"), (b"x_peer_spiffe_id", b"spiffe://evil/x")],
                     method=b"GET")
    assert got[":status"] == "200"
    seen = seen_upstream(upstream, request_id)
    assert seen is not None
    assert not {n.replace("_", "-") for n in seen["headers"]} & set(INJECTED), seen["headers"]


def test_envoy_as_shipped_refuses_underscore_names_before_meshguard(rejecting, upstream):
    request_id = rid("reject")
    r = get1(rejecting.port, "/open/me", [(b"x-request-id", request_id.encode()), (b"x_user", b"admin")])
    assert r.status == 400
    assert not reached_upstream(upstream, request_id)
    assert get1(rejecting.port, "/open/me", []).status == 200


# ---------------------------------------------------------------------------------------------
# gRPC callers


GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
FRAME = b"\x00\x00\x00\x00\x03abc"  # one uncompressed gRPC message of 3 bytes


@pytest.mark.parametrize("path, extra, grpc_status, reason", [
    ("/grpc.Auth/Call", [], "16", "jwt_missing"),
    ("/grpc.Auth/Call", [(b"authorization", b"Bearer not.a.token")], "16", "jwt_malformed"),
    ("/grpc.Mtls/Call", [], "7", "peer_not_mtls"),
    ("/grpc.Checked/Call", [], "3", "header_invalid"),
    ("/grpc.Nowhere/Call", [], "12", "route_not_found"),
    ("/grpc.GetOnly/Call", [], "12", "method_not_allowed"),
])
def test_grpc_denials_answer_with_the_grpc_status(closed, upstream, path, extra, grpc_status, reason):
    request_id = rid("grpc")
    got, body = h2_call(closed.port, path, [*GRPC, (b"x-request-id", request_id.encode()), *extra], FRAME)
    assert got[":status"] == "200", got
    assert got["content-type"] == "application/grpc"
    assert got["grpc-status"] == grpc_status, got
    assert got["grpc-message"].startswith(reason), got
    assert got.get("x-content-type-options") == "nosniff"
    assert body == b""
    assert not reached_upstream(upstream, request_id)
    assert_enforcing(closed, connections=4)


def test_grpc_rate_limit_and_size_are_resource_exhausted_not_unavailable(closed, upstream):
    client = rid("client").encode()
    got, _ = h2_call(closed.port, "/grpc.Limited/Call", [*GRPC, (b"x-client", client)], FRAME)
    assert got[":status"] == "200" and "grpc-status" not in got, got
    got, _ = h2_call(closed.port, "/grpc.Limited/Call", [*GRPC, (b"x-client", client)], FRAME)
    assert got["grpc-status"] == "8", got
    assert got["grpc-message"].startswith("rate_limited")
    big = b"\x00\x00\x00\x00\x20" + b"x" * 32
    got, _ = h2_call(closed.port, "/grpc.Small/Call", [*GRPC, (b"content-length", str(len(big)).encode())], big)
    assert got["grpc-status"] == "8", got
    assert got["grpc-message"].startswith("body_too_large")
    assert_enforcing(closed, connections=4)


def test_non_grpc_request_to_the_same_route_gets_problem_json(closed):
    got, body = h2_call(closed.port, "/grpc.Auth/Call", [(b"content-type", b"application/json")], b"{}")
    assert got[":status"] == "401"
    assert "grpc-status" not in got
    assert json.loads(body)["reason"] == "jwt_missing"


# ---------------------------------------------------------------------------------------------
# Notes: nosniff, merged Host, repeated Authorization


@pytest.mark.parametrize("path, headers, status", [
    ("/admin/x", [], 401),
    ("/nowhere", [], 404),
    ("/keyed/x", [(b"x-debug", b"1")], 400),
    ("/grpc.Mtls/Call", [], 403),
])
def test_every_denial_says_nosniff_and_no_store(closed, path, headers, status):
    r = get1(closed.port, path, headers)
    assert r.status == status
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("cache-control") == "no-store"
    assert r.header("content-type") == "application/problem+json"


def test_two_host_headers_are_refused_not_routed_past_the_host_rule(closed, upstream):
    request_id = rid("hosts")
    head = (b"GET /internal/secrets HTTP/1.1\r\nhost: public.example\r\nhost: internal.example\r\n"
            b"x-request-id: " + request_id.encode())
    r = raw_http1(closed.port, head)
    assert r.status == 400
    assert r.json()["reason"] == "header_invalid"
    assert r.json()["detail"] == "host: more than one value"
    assert not reached_upstream(upstream, request_id)
    # One Host each: the rule applies to internal.example, the open route to the rest.
    assert get1(closed.port, "/internal/secrets", [], host=b"internal.example").status == 401
    assert get1(closed.port, "/internal/secrets", [], host=b"public.example").status == 200
    assert_enforcing(closed, connections=4)


def test_the_same_token_twice_is_one_token_two_different_are_refused(closed, upstream):
    alice = b"Bearer " + token("alice").encode()
    request_id = rid("auth-twice")
    r = get1(closed.port, "/admin/me", [(b"x-request-id", request_id.encode()),
                                        (b"authorization", alice), (b"authorization", alice)])
    assert r.status == 200, r.body[:300]
    assert seen_upstream(upstream, request_id)["headers"]["x-user"] == "alice"
    request_id = rid("auth-two")
    r = get1(closed.port, "/admin/me", [(b"x-request-id", request_id.encode()), (b"authorization", alice),
                                        (b"authorization", b"Bearer " + token("bob").encode())])
    assert r.status == 401
    assert not reached_upstream(upstream, request_id)
