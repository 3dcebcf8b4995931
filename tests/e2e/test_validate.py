"""Request validation (`routes[].request`) in a real Envoy, in front of the echo upstream.

One Envoy (`--concurrency 1`, HTTP/1.1 and HTTP/2 with prior knowledge on one listener) carries a
route per concern:

- `POST /body`: a body schema and `max_body_bytes`; a valid body reaches the upstream byte for
  byte (Content-Length, chunked in many pieces, HTTP/2 with trailers); each refusal has its
  status, reason and a problem detail that names a JSON pointer and a keyword, never a value.
- `POST /limits`: JSON threat limits (depth, keys, array length, string length).
- `POST /capped`: `max_body_bytes` alone: the body streams through and is only counted.
- `GET /search`, `GET /items/{id}`, `GET /hdr/`: query schema with coercion and pollution, path
  parameter pattern, header rules.
- `PUT /profiles/{id}`, `PUT /strip/{id}`: mass assignment (unknown fields, read-only fields,
  fields writable only by a role taken from a verified token), refused or stripped.
- `POST /report/`: the same schema in report mode: a bad body passes and is audited.

How a refusal is proven never to have reached the upstream: the echo upstream records only
complete requests, and Envoy's `cluster.echo.upstream_rq_total` tells whether headers went
upstream at all (a body refused while it streams has its headers sent and its request reset).

Tokens are ES256, minted here against an inline JWKS. Every wait is a bounded poll; no test
asserts on latency.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import time
from typing import Any, Iterable

import h2.config
import h2.connection
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import harness
from harness import counter, get, post, reached_upstream, received, rid

ISSUER = "https://issuer.validate.test"
AUDIENCE = "shop"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
KID = "validate-1"
IDP = harness.TokenIssuer(ISSUER, AUDIENCE, SIGNING_KEY, kid=KID, alg="ES256", defaults={"sub": "alice"})
token = IDP.token
SECRET = "s3cr3t-VALUE"  # put in refused requests; must never come back in a reply
assert_problem = functools.partial(harness.assert_problem, secrets=(SECRET,))

BODY_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "role": {"type": "string"},
        "id": {"type": "integer"},
        "verified": {"type": "boolean"},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def profile_request(on_mass_assignment: str) -> dict[str, Any]:
    return {
        "body_schema": PROFILE_SCHEMA,
        "reject_unknown_fields": True,
        "read_only_fields": ["/id", "/verified"],
        "writable_by_role": {"claim": "role", "roles": {"admin": ["/role"]}},
        "on_mass_assignment": on_mass_assignment,
    }


BODY_LIMIT = 4096
CAPPED_LIMIT = 1000
BIG_LIMIT = 4 * 1024 * 1024

CONFIG = {
    "mode": "enforce",
    "unmatched": "deny",
    "jwt_providers": {
        "local": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": {"inline_string": IDP.jwks()}},
    },
    "routes": [
        {"name": "body", "match": {"methods": ["POST"], "path": "/body"},
         "request": {"max_body_bytes": BODY_LIMIT, "body_schema": BODY_SCHEMA}},
        {"name": "limits", "match": {"methods": ["POST"], "path": "/limits"},
         "request": {"json_limits": {"max_depth": 4, "max_keys": 3, "max_array_len": 5, "max_string_len": 16}}},
        {"name": "capped", "match": {"methods": ["POST"], "path": "/capped"},
         "request": {"max_body_bytes": CAPPED_LIMIT}},
        {"name": "search", "match": {"methods": ["GET"], "path": "/search"},
         "request": {"query_schema": {
             "type": "object",
             "properties": {
                 "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                 "active": {"type": "boolean"},
                 "tag": {"type": "array", "items": {"type": "string"}},
             },
             "additionalProperties": False,
         }}},
        {"name": "item", "match": {"methods": ["GET"], "path": "/items/{id}"},
         "request": {"params": {"id": {"type": "string", "pattern": "^[0-9]{1,6}$"}}}},
        {"name": "hdr", "match": {"prefix": "/hdr/"},
         "request": {"headers": [
             {"name": "x-api-version", "required": True, "pattern": "^v[12]$"},
             {"name": "x-debug", "forbidden": True},
         ]}},
        {"name": "profile", "match": {"methods": ["PUT"], "path": "/profiles/{id}"},
         "jwt": {"providers": ["local"], "allow_missing": True},
         "request": profile_request("reject")},
        {"name": "strip", "match": {"methods": ["PUT"], "path": "/strip/{id}"},
         "jwt": {"providers": ["local"], "allow_missing": True},
         "request": profile_request("strip")},
        # Bodies above Envoy's default 1 MiB buffer (served on the `bigbuf` listener only).
        {"name": "big", "match": {"methods": ["POST"], "path": "/big"},
         "request": {"max_body_bytes": BIG_LIMIT, "json_limits": {"max_total_bytes": BIG_LIMIT}}},
        {"name": "report", "match": {"prefix": "/report/"}, "mode": "report",
         "request": {"max_body_bytes": BODY_LIMIT, "body_schema": BODY_SCHEMA}},
    ],
}


@pytest.fixture(scope="module")
def mg(module_envoys, meshguard_wasm) -> harness.Envoy:
    # `bigbuf`: the same filter behind a listener whose connection buffer (Envoy's limit on what a
    # filter may buffer, 1 MiB by default) is raised above BIG_LIMIT.
    bigbuf = harness.http_listener("bigbuf", [harness.wasm_filter(CONFIG, wasm=meshguard_wasm)])
    bigbuf["per_connection_buffer_limit_bytes"] = 2 * BIG_LIMIT
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, http2=True, extra_listeners=[bigbuf])


# --------------------------------------------------------------------------------------------------
# Helpers


def upstream_requests(envoy: harness.Envoy) -> int:
    """Requests Envoy started toward the echo cluster (headers sent), complete or not."""
    return envoy.stats(r"^cluster\.echo\.upstream_rq_total$").get("cluster.echo.upstream_rq_total", 0)


def chunked_request(port: int, path: str, chunks: Iterable[bytes], *, headers: dict[str, str],
                    pause_s: float = 0.0, timeout_s: float = 10.0) -> harness.Response:
    """HTTP/1.1 with `Transfer-Encoding: chunked`, each chunk its own write (no Content-Length).
    The response is read even when Envoy answers before the body is complete."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        head = f"POST {path} HTTP/1.1\r\nhost: validate.test\r\ntransfer-encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                if chunk:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    if pause_s:
                        time.sleep(pause_s)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and closed: the response is still readable
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return harness.Response(resp.status, list(resp.getheaders()), resp.read())
    finally:
        sock.close()


def head_only(port: int, path: str, headers: dict[str, str], timeout_s: float = 10.0) -> harness.Response:
    """Sends only the request head (announcing a body that is never sent) and reads the answer:
    a response proves the decision was made in the headers phase."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    try:
        head = f"POST {path} HTTP/1.1\r\nhost: validate.test\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return harness.Response(resp.status, list(resp.getheaders()), resp.read())
    finally:
        sock.close()


def h2_request(port: int, path: str, chunks: list[bytes], *, headers: dict[str, str],
               trailers: dict[str, str] | None, method: str = "POST", timeout_s: float = 10.0) -> harness.Response:
    """HTTP/2 with prior knowledge: HEADERS, DATA frames without END_STREAM, then (with
    `trailers`) a trailing HEADERS frame with END_STREAM; without trailers the last DATA ends
    the stream."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sid = conn.get_next_available_stream_id()
    request_headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "validate.test"),
                       *headers.items()]
    conn.send_headers(sid, request_headers, end_stream=False)
    sock.sendall(conn.data_to_send())
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1 and trailers is None
        conn.send_data(sid, chunk, end_stream=last)
        sock.sendall(conn.data_to_send())
    if trailers is not None:
        conn.send_headers(sid, list(trailers.items()), end_stream=True)
        sock.sendall(conn.data_to_send())
    try:
        resp_headers, _, body = harness.h2_read_response(sock, conn, sid)
    finally:
        sock.close()
    status = int(dict(resp_headers)[":status"]) if resp_headers else 0
    return harness.Response(status, resp_headers, body)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


GOOD = json.dumps({"name": "Ada", "age": 36, "tags": ["x", "y"], "address": {"city": "Paris"}},
                  indent=2).encode() + b"\n"


# --------------------------------------------------------------------------------------------------
# A valid body reaches the upstream unchanged


def test_valid_body_reaches_upstream_byte_for_byte(mg, upstream):
    resp, request_id = post(mg, "/body", GOOD, label="good")
    assert resp.status == 200, resp.body[:300]
    rec = received(upstream, request_id)
    assert rec["body"] == GOOD
    assert rec["headers"]["content-length"] == str(len(GOOD))


def test_valid_body_in_many_chunks_reaches_upstream_byte_for_byte(mg, upstream):
    request_id = rid("chunks")
    resp = chunked_request(mg.port, "/body", pieces(GOOD, 7), pause_s=0.002,
                           headers={"x-request-id": request_id, "content-type": "application/json"})
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == GOOD


def test_bad_body_in_many_chunks_is_refused_after_the_last(mg, upstream):
    request_id = rid("chunks-bad")
    bad = json.dumps({"name": "Ada", "age": -1, "pad": "x" * 300}).encode()
    resp = chunked_request(mg.port, "/body", pieces(bad, 16), pause_s=0.001,
                           headers={"x-request-id": request_id, "content-type": "application/json"})
    body = assert_problem(resp, 400, "schema_violation", request_id)
    assert body["detail"] == 'body at "/age" failed "minimum"'
    assert not reached_upstream(upstream, request_id)


# --------------------------------------------------------------------------------------------------
# Media type and size


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_unsupported_media_type_is_415(mg, upstream, ctype):
    resp, request_id = post(mg, "/body", GOOD, label="ctype", content_type=ctype)
    assert_problem(resp, 415, "unsupported_media_type", request_id)
    assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "application/merge-patch+json"])
def test_json_media_types_pass_by_default(mg, upstream, ctype):
    resp, request_id = post(mg, "/body", GOOD, label="ctype-ok", content_type=ctype)
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == GOOD


def test_oversize_body_with_content_length_is_413_from_the_headers_alone(mg, upstream):
    before = upstream_requests(mg)
    request_id = rid("413-cl")
    # Only the head is sent: the answer cannot wait for a body.
    resp = head_only(mg.port, "/body", {"x-request-id": request_id, "content-type": "application/json",
                                        "content-length": str(BODY_LIMIT + 1)})
    body = assert_problem(resp, 413, "body_too_large", request_id)
    assert str(BODY_LIMIT) in body["detail"]
    # And with the body sent too: nothing went upstream, not even the headers.
    big = json.dumps({"name": "x" * (BODY_LIMIT + 10)}).encode()
    resp, request_id2 = post(mg, "/body", big, label="413-cl-body")
    assert_problem(resp, 413, "body_too_large", request_id2)
    assert upstream_requests(mg) == before
    assert not reached_upstream(upstream, request_id) and not reached_upstream(upstream, request_id2)


def test_oversize_chunked_body_is_413_while_streaming(mg, upstream):
    request_id = rid("413-chunked")
    chunks = [b'{"name":"'] + [b"x" * 512] * 40 + [b'"}']  # 20 KiB, limit 4 KiB
    resp = chunked_request(mg.port, "/body", chunks, pause_s=0.001,
                           headers={"x-request-id": request_id, "content-type": "application/json"})
    assert_problem(resp, 413, "body_too_large", request_id)
    assert not reached_upstream(upstream, request_id)


def test_oversize_chunked_body_on_a_streaming_route_is_413_and_the_upstream_request_is_cut(mg, upstream):
    """`max_body_bytes` alone: the body streams through and is counted; past the limit the
    request is answered 413 and the upstream request (headers already sent) is reset."""
    before = upstream_requests(mg)
    allowed, denied = counter(mg, "route.capped.allow"), counter(mg, "route.capped.deny")
    request_id = rid("413-stream")
    resp = chunked_request(mg.port, "/capped", [b"y" * 100] * 30, pause_s=0.002,
                           headers={"x-request-id": request_id, "content-type": "text/plain"})
    assert_problem(resp, 413, "body_too_large", request_id)
    assert upstream_requests(mg) == before + 1  # the headers went on; the body never completed
    time.sleep(0.2)
    assert not reached_upstream(upstream, request_id)
    # Counted once, as a denial (the decision waited for the body).
    assert (counter(mg, "route.capped.allow"), counter(mg, "route.capped.deny")) == (allowed, denied + 1)
    # Under the limit the same route passes the body through unchanged, counted as allowed.
    request_id = rid("capped-ok")
    resp = chunked_request(mg.port, "/capped", [b"z" * 100] * 9,
                           headers={"x-request-id": request_id, "content-type": "text/plain"})
    assert resp.status == 200
    assert received(upstream, request_id)["body"] == b"z" * 900
    assert (counter(mg, "route.capped.allow"), counter(mg, "route.capped.deny")) == (allowed + 1, denied + 1)


# --------------------------------------------------------------------------------------------------
# Schema and JSON


@pytest.mark.parametrize("doc, detail", [
    ({"name": "Ada", "age": -5}, 'body at "/age" failed "minimum"'),
    ({"name": 7}, 'body at "/name" failed "type"'),
    ({"age": 1}, 'body at "" failed "required": missing "name"'),
    ({"name": "Ada", "tags": ["ok", 3]}, 'body at "/tags/1" failed "type"'),
    ({"name": "Ada", "address": {"city": False}}, 'body at "/address/city" failed "type"'),
    ([SECRET], 'body at "" failed "type"'),
])
def test_schema_violation_names_pointer_and_keyword_not_the_value(mg, upstream, doc, detail):
    if isinstance(doc, dict) and "name" in doc and doc["name"] == "Ada":
        doc = {**doc, "note": SECRET}
    resp, request_id = post(mg, "/body", json.dumps(doc).encode(), label="schema")
    body = assert_problem(resp, 400, "schema_violation", request_id)
    assert body["detail"] == detail
    assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("raw, what", [
    (b'{"name": "Ada"', "truncated"),
    (b'{"name": "Ada",}', "trailing comma"),
    (b"{'name': 'Ada'}", "single quotes"),
    (b'{"name": "Ada"} {"name": "Bob"}', "two documents"),
    (b'{"name": "Ada", "name": "' + SECRET.encode() + b'"}', "duplicate key"),
    (b'{"name": "Ad\xff\xfea"}', "invalid UTF-8"),
    (b'{"name": "\\ud800"}', "lone surrogate escape"),
    (b'{"name": NaN}', "NaN"),
    (b"   ", "empty body"),
])
def test_malformed_json_is_refused(mg, upstream, raw, what):
    resp, request_id = post(mg, "/body", raw, label="malformed")
    body = assert_problem(resp, 400, "json_malformed", request_id)
    assert "detail" in body, what
    assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("doc, limit", [
    ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "max_depth"),
    ({"a": 1, "b": 2, "c": 3, "d": 4}, "max_keys"),
    ({"a": [1, 2, 3, 4, 5, 6]}, "max_array_len"),
    ({"a": SECRET * 3}, "max_string_len"),
    ({SECRET * 3: 1}, "max_string_len"),
])
def test_json_limits_are_refused(mg, upstream, doc, limit):
    resp, request_id = post(mg, "/limits", json.dumps(doc).encode(), label="limits")
    body = assert_problem(resp, 400, "json_limits", request_id)
    assert body["detail"] == f"body exceeds {limit}"
    assert not reached_upstream(upstream, request_id)


def test_json_within_limits_passes(mg, upstream):
    doc = json.dumps({"a": {"b": {"c": [1, 2, 3, 4, 5]}}, "s": "x" * 16}).encode()
    resp, request_id = post(mg, "/limits", doc, label="limits-ok")
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == doc


# --------------------------------------------------------------------------------------------------
# Query, path parameters, headers (decided in the headers phase)


@pytest.mark.parametrize("query", ["", "?limit=10", "?limit=1&active=true", "?active=false&tag=a&tag=b", "?tag=solo"])
def test_query_values_are_coerced_to_the_schema_types(mg, upstream, query):
    resp, request_id = get(mg, "/search" + query, label="query-ok")
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["path"] == "/search" + query


@pytest.mark.parametrize("query, reason, detail", [
    ("?limit=ten", "schema_violation", 'query at "/limit" failed "type"'),
    ("?limit=1.5", "schema_violation", 'query at "/limit" failed "type"'),
    ("?limit=0", "schema_violation", 'query at "/limit" failed "minimum"'),
    ("?active=yes", "schema_violation", 'query at "/active" failed "type"'),
    ("?other=" + SECRET, "schema_violation", 'query at "" failed "additionalProperties"'),
    ("?limit=1&limit=2", "param_duplicate", 'query parameter "limit" is repeated'),
    ("?active=true&active=true", "param_duplicate", 'query parameter "active" is repeated'),
])
def test_query_refusals(mg, upstream, query, reason, detail):
    resp, request_id = get(mg, "/search" + query, label="query")
    body = assert_problem(resp, 400, reason, request_id)
    assert body["detail"] == detail
    assert not reached_upstream(upstream, request_id)


def test_path_parameter_pattern(mg, upstream):
    resp, request_id = get(mg, "/items/123456", label="param-ok")
    assert resp.status == 200
    assert received(upstream, request_id)["path"] == "/items/123456"
    for value in ("1234567", "12a", SECRET):
        resp, request_id = get(mg, f"/items/{value}", label="param")
        body = assert_problem(resp, 400, "schema_violation", request_id)
        assert body["detail"] == 'path parameter "id" failed "pattern"'
        assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("headers, detail", [
    ({}, 'header "x-api-version" is required'),
    ({"x-api-version": "v3"}, 'header "x-api-version" does not match its pattern'),
    ({"x-api-version": SECRET}, 'header "x-api-version" does not match its pattern'),
    ({"x-api-version": "v1", "x-debug": "1"}, 'header "x-debug" is not allowed'),
])
def test_header_rules(mg, upstream, headers, detail):
    resp, request_id = get(mg, "/hdr/x", label="hdr", headers=headers)
    body = assert_problem(resp, 400, "header_invalid", request_id)
    assert body["detail"] == detail
    assert not reached_upstream(upstream, request_id)


def test_header_rules_pass(mg, upstream):
    resp, request_id = get(mg, "/hdr/x", label="hdr-ok", headers={"x-api-version": "v2"})
    assert resp.status == 200
    assert received(upstream, request_id)["headers"]["x-api-version"] == "v2"


# --------------------------------------------------------------------------------------------------
# Mass assignment


def put(envoy, path, doc, *, label, tok: str | None = None) -> tuple[harness.Response, str]:
    headers = {"authorization": f"Bearer {tok}"} if tok else {}
    return post(envoy, path, json.dumps(doc).encode(), label=label, method="PUT", headers=headers)


@pytest.mark.parametrize("doc, tok, detail", [
    ({"name": "a", "is_admin": True}, None, 'field "/is_admin" is not declared by the schema'),
    ({"name": "a", "address": {"city": "x", "zip": SECRET}}, None, 'field "/address/zip" is not declared by the schema'),
    ({"name": "a", "id": 9}, None, 'field "/id" is read-only'),
    ({"name": "a", "verified": True}, token(role="admin"), 'field "/verified" is read-only'),
    ({"name": "a", "role": "admin"}, None, 'field "/role" may not be set by this caller'),
    ({"name": "a", "role": "admin"}, token(role="user"), 'field "/role" may not be set by this caller'),
    ({"name": "a", "role": "admin"}, token(role=["user", "auditor"]), 'field "/role" may not be set by this caller'),
])
def test_mass_assignment_is_refused(mg, upstream, doc, tok, detail):
    resp, request_id = put(mg, "/profiles/7", doc, label="mass", tok=tok)
    body = assert_problem(resp, 400, "mass_assignment", request_id)
    assert body["detail"] == detail
    assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("role", ["admin", ["user", "admin"]])
def test_role_writable_field_passes_for_the_role(mg, upstream, role):
    doc = {"name": "a", "role": "admin"}
    resp, request_id = put(mg, "/profiles/7", doc, label="mass-role", tok=token(role=role))
    assert resp.status == 200, resp.body[:300]
    assert json.loads(received(upstream, request_id)["body"]) == doc


def test_strip_mode_forwards_the_body_without_the_fields(mg, upstream):
    raw = b'{"name": "a", "id": 9, "extra": {"deep": [1, 2]}, "address": {"city": "x", "zip": "1"}, "role": "admin"}'
    resp, request_id = post(mg, "/strip/7", raw, label="strip", method="PUT")
    assert resp.status == 200, resp.body[:300]
    rec = received(upstream, request_id)
    # The members are cut out of the bytes as sent: what remains keeps its formatting.
    assert rec["body"] == b'{"name": "a", "address": {"city": "x"}}'
    # content-length was dropped in the headers phase (the body shrank after the headers went
    # on): Envoy sends the rewritten body chunked, with its true length.
    assert "content-length" not in rec["headers"]
    assert rec["headers"].get("transfer-encoding") == "chunked"
    assert rec["body_len"] == len(rec["body"])


def test_strip_mode_keeps_role_fields_for_the_role_and_clean_bodies_unchanged(mg, upstream):
    raw = b'{"name": "a", "role": "admin"}'
    resp, request_id = post(mg, "/strip/7", raw, label="strip-role", method="PUT",
                            headers={"authorization": f"Bearer {token(role='admin')}"})
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == raw


def test_strip_mode_still_refuses_schema_violations(mg, upstream):
    resp, request_id = post(mg, "/strip/7", b'{"name": 5, "id": 1}', label="strip-bad", method="PUT")
    body = assert_problem(resp, 400, "schema_violation", request_id)
    assert body["detail"] == 'body at "/name" failed "type"'


# --------------------------------------------------------------------------------------------------
# HTTP/2: trailers end the body


def test_http2_body_with_trailers_good_reaches_upstream(mg, upstream):
    request_id = rid("h2-trailers-good")
    resp = h2_request(mg.port, "/body", pieces(GOOD, 10),
                      headers={"x-request-id": request_id, "content-type": "application/json"},
                      trailers={"x-checksum": "abc"})
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == GOOD


def test_http2_body_with_trailers_bad_is_refused(mg, upstream):
    request_id = rid("h2-trailers-bad")
    bad = json.dumps({"name": "Ada", "age": "old", "note": SECRET}).encode()
    resp = h2_request(mg.port, "/body", pieces(bad, 8),
                      headers={"x-request-id": request_id, "content-type": "application/json"},
                      trailers={"x-checksum": "abc"})
    assert resp.status == 400, resp.body[:300]
    body = json.loads(resp.body)
    assert (body["reason"], body["detail"]) == ("schema_violation", 'body at "/age" failed "type"')
    assert SECRET.encode() not in resp.body
    time.sleep(0.2)
    assert not reached_upstream(upstream, request_id)


def test_http2_body_without_trailers(mg, upstream):
    request_id = rid("h2-plain")
    resp = h2_request(mg.port, "/body", pieces(GOOD, 10),
                      headers={"x-request-id": request_id, "content-type": "application/json"}, trailers=None)
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == GOOD
    request_id = rid("h2-plain-bad")
    resp = h2_request(mg.port, "/body", [b'{"name":', b" 1}"],
                      headers={"x-request-id": request_id, "content-type": "application/json"}, trailers=None)
    assert resp.status == 400 and json.loads(resp.body)["reason"] == "schema_violation"


def test_http2_strip_mode_rewrites_the_body_ended_by_trailers(mg, upstream):
    """The rewrite happens in the trailers callback: the upstream still gets the stripped body."""
    request_id = rid("h2-strip")
    raw = b'{"name": "a", "id": 9, "extra": true}'
    resp = h2_request(mg.port, "/strip/7", pieces(raw, 5),
                      headers={"x-request-id": request_id, "content-type": "application/json"},
                      trailers={"x-checksum": "abc"}, method="PUT")
    assert resp.status == 200, resp.body[:300]
    rec = received(upstream, request_id)
    assert json.loads(rec["body"]) == {"name": "a"}
    assert rec["headers"].get("content-length") in (None, str(len(rec["body"])))


def test_http2_trailers_without_data_is_an_empty_body(mg, upstream):
    request_id = rid("h2-no-data")
    resp = h2_request(mg.port, "/body", [], headers={"x-request-id": request_id, "content-type": "application/json"},
                      trailers={"x-checksum": "abc"})
    assert resp.status == 400, resp.body[:300]
    assert json.loads(resp.body)["reason"] == "json_malformed"
    assert not reached_upstream(upstream, request_id)


def test_http2_oversize_body_is_413_while_buffering(mg, upstream):
    request_id = rid("h2-413")
    resp = h2_request(mg.port, "/body", [b'{"name":"'] + [b"x" * 1024] * 8 + [b'"}'],
                      headers={"x-request-id": request_id, "content-type": "application/json"},
                      trailers={"x-checksum": "abc"})
    assert resp.status == 413, resp.body[:300]
    assert json.loads(resp.body)["reason"] == "body_too_large"
    time.sleep(0.2)
    assert not reached_upstream(upstream, request_id)


# --------------------------------------------------------------------------------------------------
# Report mode


def test_report_mode_passes_a_bad_body_and_audits_it(mg, upstream):
    bad = json.dumps({"name": 5}).encode()
    resp, request_id = post(mg, "/report/x", bad, label="report")
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == bad
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"], rec["route"]) == ("report", "schema_violation", "report")


def test_report_mode_passes_an_oversize_body_and_audits_it(mg, upstream):
    big = json.dumps({"name": "x" * (BODY_LIMIT + 10)}).encode()
    request_id = rid("report-413")
    resp = chunked_request(mg.port, "/report/x", pieces(big, 1000),
                           headers={"x-request-id": request_id, "content-type": "application/json"})
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == big
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"]) == ("report", "body_too_large")


def test_denials_are_audited_and_counted(mg):
    resp, request_id = post(mg, "/body", b'{"name": 1}', label="audit")
    assert resp.status == 400
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"], rec["route"], rec["status"]) == ("deny", "schema_violation", "body", 400)
    assert counter(mg, "reason.schema_violation.deny") > 0
    before = counter(mg, "reason.schema_violation.report")
    resp, _ = post(mg, "/report/y", b'{"name": 1}', label="audit-report")
    assert resp.status == 200
    assert counter(mg, "reason.schema_violation.report") == before + 1
    assert SECRET not in mg.log_text()


# --------------------------------------------------------------------------------------------------
# Bodies above 1 MiB


def test_body_above_one_mib_is_checked_whole(mg, upstream):
    """A 2 MiB body whose first MiB alone would be a complete document: the check reads all of
    it (a check of a prefix would pass JSON the upstream's parser then reads differently)."""
    port = mg.listener_ports["bigbuf"]
    good = b'{"name": "a"}' + b" " * (2 * 1024 * 1024)
    request_id = rid("big-ok")
    resp = harness.raw_request(port, "POST", "/big", body=good,
                               headers={"x-request-id": request_id, "content-type": "application/json"})
    assert resp.status == 200, resp.body[:300]
    assert received(upstream, request_id)["body"] == good
    request_id = rid("big-tail")
    resp = harness.raw_request(port, "POST", "/big", body=good + b"]",
                               headers={"x-request-id": request_id, "content-type": "application/json"})
    body = assert_problem(resp, 400, "json_malformed", request_id)
    assert body["detail"].endswith(f"at byte {len(good)}"), body
    assert not reached_upstream(upstream, request_id)


def test_envoy_buffer_limit_caps_what_meshguard_can_buffer(mg, upstream):
    """On a listener with Envoy's default 1 MiB buffer, a larger body on a checked route gets
    Envoy's own 413 (not a meshguard problem) before meshguard sees all of it."""
    body = b'{"name": "a"}' + b" " * (2 * 1024 * 1024)
    request_id = rid("big-envoy")
    resp = harness.raw_request(mg.port, "POST", "/big", body=body,
                               headers={"x-request-id": request_id, "content-type": "application/json"})
    assert resp.status == 413
    assert (resp.header("content-type") or "") != "application/problem+json"
    assert not reached_upstream(upstream, request_id)
