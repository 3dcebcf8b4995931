"""Issue 10, core half, in a real Envoy: request variants that real frameworks treat as the same
request must meet the same rule.

One Envoy (`--concurrency 1`, default HCM: no path normalisation) runs meshguard in front of the
echo upstream, which records every request that reaches it (method, path as sent, headers, body).
Each test sends a batch of variants of one request and checks two things: that none of the
refused variants reached the upstream, and afterwards that the VM still enforces (a token-less
request to a protected route is refused, one with a token passes).

Which upstream treats which variant as the same request:
- `/admin;x`, `/admin;/x`, `/public/..;/admin`: Tomcat, Jetty and Spring cut `;` path parameters
  before routing (`..;` is `..`).
- `/ADMIN`, `/Admin/x`, `/%41dmin`, `/adm%C4%B1n` (dotless i): Express and ASP.NET Core route
  case-insensitively (ASP.NET folds `ı` to `I`).
- `HEAD /reports`: every framework answers HEAD with its GET handler.
- `get /reports`: ASP.NET Core compares methods case-insensitively.
- `{"ROLE": ...}`, `{"role":1,"ROLE":2}`: Go's encoding/json and ASP.NET Core bind member names
  case-insensitively (the last one wins).
- `{"from":"bob","from":"alice"}`: serde_json keeps the last copy, some parsers the first.
- lockout names `Victim`, ` victim `, fullwidth, `["victim"]`, `{"$eq":"victim"}`, a form body:
  login code that lower-cases, trims, NFKC-normalises (Django) or hands the value to a NoSQL
  query, or reads a form.

Tokens are ES256, minted here against an inline JWKS. No test asserts on latency.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import harness

ISSUER = "https://issuer.hardening.test"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
KID = "hardening-1"

_ids = itertools.count(1)


def rid(label: str) -> str:
    return f"hard-{label}-{next(_ids)}"


def _jwks() -> str:
    jwk = pyjwt.algorithms.ECAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True)
    jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
    return json.dumps({"keys": [jwk]})


def token(sub: str = "alice", **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ISSUER, "sub": sub, "iat": now, "exp": now + 3600}
    payload.update(claims)
    return pyjwt.encode(payload, SIGNING_KEY, algorithm="ES256", headers={"kid": KID})


def raw_token(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A JWS over exactly this payload (any JSON types) and extra header parameters."""
    h = {"kid": KID, **(header or {})}
    return pyjwt.PyJWS().encode(json.dumps(payload).encode(), SIGNING_KEY, algorithm="ES256", headers=h)


def forged_without_kid() -> str:
    """A token naming no `kid`, with a signature of the right length that does not verify."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"iss": ISSUER, "sub": "mallory", "exp": int(time.time()) + 3600}).encode())
    return f"{head}.{payload}.{b64(os.urandom(64))}"


MAIN = {"issuer": ISSUER, "algorithms": ["ES256"], "local_jwks": {"inline_string": _jwks()},
        "claim_to_headers": [{"claim_name": "sub", "header_name": "x-user"}]}
PARAM = {"issuer": ISSUER, "algorithms": ["ES256"], "local_jwks": {"inline_string": _jwks()},
         "from_params": ["access_token"]}
COOKIE = {"issuer": ISSUER, "algorithms": ["ES256"], "local_jwks": {"inline_string": _jwks()},
          "from_cookies": ["session"], "forward": True}
JWT = {"providers": ["main"]}

CONFIG = {
    "jwt_providers": {"main": MAIN, "param": PARAM, "cookie": COOKIE},
    "routes": [
        {"name": "admin", "match": {"prefix": "/admin"}, "jwt": JWT},
        {"name": "user", "match": {"methods": ["GET", "PUT"], "path": "/users/{id}"}, "jwt": JWT,
         "owner": {"param": "id", "claim": "sub"}},
        {"name": "reports", "match": {"methods": ["GET"], "path": "/reports"}, "jwt": JWT},
        {"name": "profile", "match": {"methods": ["POST"], "path": "/profile"}, "jwt": JWT,
         "request": {"body_schema": {"type": "object", "properties": {
             "name": {"type": "string", "maxLength": 10}, "role": {}, "profile": {"type": "object"}}},
             "read_only_fields": ["/role", "/profile/isAdmin"]}},
        {"name": "transfer", "match": {"methods": ["POST"], "path": "/transfer"}, "jwt": JWT,
         "owner": {"body_field": "from", "claim": "sub"}},
        {"name": "login", "match": {"methods": ["POST"], "path": "/login"},
         "lockout": {"keys": ["body:username"], "failures": 3, "window_seconds": 300,
                     "block_seconds": 300, "upstream_statuses": [401]}},
        {"name": "limited", "match": {"prefix": "/limited"}, "jwt": JWT,
         "rate_limits": [{"key": "client_ip", "requests": 3, "per_seconds": 3600, "burst": 3}]},
        {"name": "viaparam", "match": {"prefix": "/viaparam"}, "jwt": {"providers": ["param"]}},
        {"name": "viacookie", "match": {"prefix": "/viacookie"}, "jwt": {"providers": ["cookie"]}},
        {"name": "matrix", "match": {"prefix": "/matrix", "allow_semicolon_params": True}},
        {"name": "orders", "match": {"methods": ["GET"], "path": "/orders"}, "jwt": JWT,
         "owner": {"query": "user_id", "claim": "sub"}},
        {"name": "open", "match": {"prefix": "/"}},
    ],
}


@pytest.fixture(scope="module")
def mg(module_envoys, meshguard_wasm) -> harness.Envoy:
    # HTTP/1.1 and HTTP/2 (prior knowledge) on one listener: Envoy's HTTP/1.1 codec refuses a
    # lower-case method itself, HTTP/2 lets any token through to meshguard.
    return module_envoys(plugin_config=CONFIG, wasm=meshguard_wasm, http2=True)


# --------------------------------------------------------------------------------------------------
# Helpers


def send(envoy: harness.Envoy, method: str, path: str, *, tok: str | None = None, label: str = "req",
         headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[harness.Response, str]:
    request_id = rid(label)
    h = {"x-request-id": request_id, **(headers or {})}
    if tok:
        h["authorization"] = f"Bearer {tok}"
    return envoy.request(method, path, headers=h, body=body), request_id


def h2_get(port: int, method: str, path: str, headers: dict[str, str], timeout_s: float = 10.0) -> harness.Response:
    """One HTTP/2 request without a body (prior knowledge), the method sent as given."""
    a = harness.h2_request(port, method, path, headers, authority="hardening.test", timeout_s=timeout_s)
    return harness.Response(a.status, a.headers, a.body)


def reached(upstream: harness.EchoUpstream, request_id: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests if r["headers"].get("x-request-id") == request_id]


def refused(resp: harness.Response, upstream: harness.EchoUpstream, request_id: str,
            statuses: tuple[int, ...], reasons: tuple[str, ...] | None = None, what: str = "") -> None:
    assert resp.status in statuses, (what, resp.status, resp.body[:300])
    assert not reached(upstream, request_id), f"{what}: a refused request reached the upstream"
    if reasons is not None and resp.body:
        body = resp.json()
        assert body["reason"] in reasons, (what, body)
        assert body["request_id"] == request_id


def passed(resp: harness.Response, upstream: harness.EchoUpstream, request_id: str, what: str = "") -> dict[str, Any]:
    assert resp.status == 200, (what, resp.status, resp.body[:300])
    found = reached(upstream, request_id)
    assert len(found) == 1, f"{what}: reached the upstream {len(found)} times"
    return found[0]


def still_enforces(mg: harness.Envoy, upstream: harness.EchoUpstream) -> None:
    """After a batch: the VM is alive and still refuses, and still lets a good request through."""
    resp, request_id = send(mg, "GET", "/admin/health", label="sentinel-no-token")
    refused(resp, upstream, request_id, (401,), ("jwt_missing",), "sentinel without token")
    resp, request_id = send(mg, "GET", "/admin/health", tok=token(), label="sentinel-token")
    passed(resp, upstream, request_id, "sentinel with token")


# --------------------------------------------------------------------------------------------------
# Paths and methods

PROTECTED_VARIANTS = [
    "/admin;x",
    "/admin;/x",
    "/admin;jsessionid=ABC/x",
    "/public/..;/admin",
    "/public/%2e%2e;/admin",
    "/x/.;/admin",
    "/admin%3Bx",
    "/ADMIN",
    "/Admin/x",
    "/aDmIn/",
    "/%41dmin",
    "/%61DMIN/x",
    "/adm%C4%B1n",
]


@pytest.mark.parametrize("path", PROTECTED_VARIANTS)
def test_path_variants_of_a_protected_route_are_refused(mg, upstream, path):
    resp, request_id = send(mg, "GET", path, label="pathvar")
    refused(resp, upstream, request_id, (400, 401), ("jwt_missing", "path_invalid"), path)


def test_path_variants_batch_then_vm_still_enforces(mg, upstream):
    for path in PROTECTED_VARIANTS:
        resp, request_id = send(mg, "GET", path, label="pathbatch")
        refused(resp, upstream, request_id, (400, 401), ("jwt_missing", "path_invalid"), path)
    # With a token, a case variant passes and the upstream sees the path as it was sent.
    resp, request_id = send(mg, "GET", "/ADMIN/Reports?q=1", tok=token(), label="case-ok")
    assert passed(resp, upstream, request_id)["path"] == "/ADMIN/Reports?q=1"
    # `;` parameters are refused with a token too, unless the route accepts them.
    resp, request_id = send(mg, "GET", "/admin;jsessionid=1", tok=token(), label="semi-token")
    refused(resp, upstream, request_id, (400,), ("path_invalid",))
    resp, request_id = send(mg, "GET", "/public;x=1", label="semi-open")
    refused(resp, upstream, request_id, (400,), ("path_invalid",))
    resp, request_id = send(mg, "GET", "/matrix;v=1/items;color=red", label="matrix")
    assert passed(resp, upstream, request_id)["path"] == "/matrix;v=1/items;color=red"
    resp, request_id = send(mg, "GET", "/public/a?x=1;2", label="semi-query")
    passed(resp, upstream, request_id)
    still_enforces(mg, upstream)


def test_head_follows_get_and_method_case_is_refused(mg, upstream):
    resp, request_id = send(mg, "HEAD", "/reports", label="head")
    refused(resp, upstream, request_id, (401,), what="HEAD without token")
    resp, request_id = send(mg, "HEAD", "/reports", tok=token(), label="head-ok")
    assert resp.status == 200 and len(reached(upstream, request_id)) == 1
    for method in ["get", "Get", "gET", "hEAD"]:
        # HTTP/1.1: Envoy's codec refuses a lower-case method before any filter runs.
        resp, request_id = send(mg, method, "/reports", label="method-case")
        refused(resp, upstream, request_id, (400,), what=f"HTTP/1.1 {method}")
        # HTTP/2: the method reaches meshguard, which refuses it (ASP.NET Core would run GET).
        for path in ["/reports", "/public/x"]:
            request_id = rid("method-case-h2")
            resp = h2_get(mg.port, method, path, {"x-request-id": request_id})
            refused(resp, upstream, request_id, (400,), ("method_invalid",), f"HTTP/2 {method} {path}")
    request_id = rid("h2-get")
    resp = h2_get(mg.port, "GET", "/public/x", {"x-request-id": request_id})
    passed(resp, upstream, request_id, "HTTP/2 GET")
    # A GET-only route does not take POST; POST falls through to the catch-all as configured.
    resp, request_id = send(mg, "POST", "/reports", body=b"", label="post")
    passed(resp, upstream, request_id)
    still_enforces(mg, upstream)


def test_owner_check_meets_case_and_semicolon_variants(mg, upstream):
    bob = token("bob")
    for path in ["/users/bob", "/USERS/bob", "/Users/bob?x=1"]:
        resp, request_id = send(mg, "GET", path, tok=bob, label="owner-ok")
        passed(resp, upstream, request_id, path)
    for path, reason in [
        ("/USERS/alice", "owner_mismatch"),
        ("/users/Alice", "owner_mismatch"),
        ("/users/BOB", "owner_mismatch"),  # another account to a case-sensitive store
        ("/users/alice;x", "path_invalid"),
        ("/users/alice;/../bob", "path_invalid"),
        ("/users/bob;/../alice", "path_invalid"),
    ]:
        resp, request_id = send(mg, "GET", path, tok=bob, label="owner-var")
        refused(resp, upstream, request_id, (400, 403), (reason,), path)
    still_enforces(mg, upstream)


# --------------------------------------------------------------------------------------------------
# JSON bodies and mass assignment


def post_json(mg, path: str, doc: str, *, tok: str | None, label: str,
              content_type: str = "application/json", headers: dict[str, str] | None = None):
    return send(mg, "POST", path, tok=tok, label=label, body=doc.encode(),
                headers={"content-type": content_type, **(headers or {})})


def test_protected_members_in_any_case_are_refused(mg, upstream):
    tok = token()
    resp, request_id = post_json(mg, "/profile", '{"name":"ann"}', tok=tok, label="mass-ok")
    assert base64.b64decode(passed(resp, upstream, request_id)["body_b64"]) == b'{"name":"ann"}'
    for doc, reason in [
        ('{"role":"admin"}', "mass_assignment"),
        ('{"ROLE":"admin"}', "mass_assignment"),
        ('{"Role":"admin"}', "mass_assignment"),
        ('{"profile":{"ISADMIN":true}}', "mass_assignment"),
        ('{"PROFILE":{"isAdmin":true}}', "mass_assignment"),
        ('{"name":"ann","name":"x"}', "json_malformed"),
        ('{"name":"ann","NAME":"far-too-long-a-name"}', "json_malformed"),
        ('{"role":"user","ROLE":"admin"}', "json_malformed"),
    ]:
        resp, request_id = post_json(mg, "/profile", doc, tok=tok, label="mass")
        refused(resp, upstream, request_id, (400,), (reason,), doc)
    still_enforces(mg, upstream)


def test_owner_body_field_goes_through_the_strict_reader(mg, upstream):
    bob = token("bob")
    for doc in ['{"from":"bob","amount":1}', '{"FROM":"bob","amount":1}']:
        resp, request_id = post_json(mg, "/transfer", doc, tok=bob, label="xfer-ok")
        passed(resp, upstream, request_id, doc)
    for doc, reason in [
        ('{"from":"alice"}', "owner_mismatch"),
        ('{"From":"alice"}', "owner_mismatch"),
        ('{"from":"bob","from":"alice"}', "json_malformed"),
        ('{"from":"alice","from":"bob"}', "json_malformed"),
        ('{"from":"bob","FROM":"alice"}', "json_malformed"),
    ]:
        resp, request_id = post_json(mg, "/transfer", doc, tok=bob, label="xfer")
        # The body is checked after the headers went upstream; the refused body never arrives.
        assert resp.status in (400, 403), (doc, resp.status)
        assert resp.json()["reason"] == reason, doc
        assert all(r["body_len"] == 0 or b"alice" not in base64.b64decode(r["body_b64"])
                   for r in reached(upstream, request_id)), doc
    still_enforces(mg, upstream)


# --------------------------------------------------------------------------------------------------
# Lockout keys


def login(mg, doc: str, *, fail: bool, content_type: str = "application/json") -> harness.Response:
    headers = {"x-echo-status": "401"} if fail else {}
    resp, _ = post_json(mg, "/login", doc, tok=None, label="login", content_type=content_type, headers=headers)
    return resp


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("name,variants", [
    ("victim1", [('{"username":"Victim1"}', "application/json"),
                 ('{"username":" victim1 "}', "application/json"),
                 ('{"username":"\\uff56\\uff49\\uff43\\uff54\\uff49\\uff4d\\uff11"}', "application/json")]),
    ("victim2", [('{"username":["victim2"]}', "application/json"),
                 ('{"USERNAME":{"$eq":"VICTIM2"}}', "application/json"),
                 ("username=Victim2&password=x", FORM)]),
])
def test_lockout_counts_every_spelling_of_one_name(mg, upstream, name, variants):
    for doc, ctype in variants:
        resp = login(mg, doc, fail=True, content_type=ctype)
        assert resp.status == 401, (doc, resp.status, resp.body[:200])
    resp = login(mg, json.dumps({"username": name}), fail=False)
    assert resp.status == 429 and resp.json()["reason"] == "locked_out", (name, resp.status)
    assert resp.header("retry-after")
    other = login(mg, json.dumps({"username": name + "-other"}), fail=False)
    assert other.status == 200
    still_enforces(mg, upstream)


def test_lockout_refuses_ambiguous_bodies_and_counts_non_strings(mg, upstream):
    resp = login(mg, '{"username":"x","username":"victim3"}', fail=True)
    assert resp.status == 400 and resp.json()["reason"] == "json_malformed"
    # A NoSQL operator as the name: the attempt is a failure even when the upstream says 200.
    # It is counted before the request goes on, so the third attempt (failures: 3) is refused.
    for _ in range(2):
        assert login(mg, '{"username":{"$ne":null}}', fail=False).status == 200
    resp = login(mg, '{"username":{"$ne":null}}', fail=False)
    assert resp.status == 429, resp.status
    still_enforces(mg, upstream)


# --------------------------------------------------------------------------------------------------
# Token sources and JWT claims


def test_bearer_next_to_a_parameter_token_is_verified_or_refused(mg, upstream):
    good = token("alice")
    resp, request_id = send(mg, "GET", f"/viaparam/a?access_token={good}&x=1", label="param")
    seen = passed(resp, upstream, request_id)
    assert seen["path"] == "/viaparam/a?x=1"
    resp, request_id = send(mg, "GET", "/viaparam/a", tok=good, label="param-bearer")
    assert "authorization" not in passed(resp, upstream, request_id)["headers"]
    # The same token in both places: fine, both removed.
    resp, request_id = send(mg, "GET", f"/viaparam/a?access_token={good}", tok=good, label="param-both")
    seen = passed(resp, upstream, request_id)
    assert "authorization" not in seen["headers"] and seen["path"] == "/viaparam/a"
    # An unverified bearer next to a verified parameter token never reaches the upstream.
    resp, request_id = send(mg, "GET", f"/viaparam/a?access_token={good}", tok=token("mallory"),
                            label="param-two")
    refused(resp, upstream, request_id, (401,), ("jwt_malformed",))
    resp, request_id = send(mg, "GET", f"/viaparam/a?access_token={good}", tok="not-a-jwt", label="param-junk")
    refused(resp, upstream, request_id, (401,), ("jwt_malformed",))
    still_enforces(mg, upstream)


def test_registered_claims_of_the_wrong_type_are_refused(mg, upstream):
    now = int(time.time())
    base = {"iss": ISSUER, "sub": "alice", "exp": now + 3600}
    for edit in [{"aud": {"x": "api"}}, {"aud": ["api", 1]}, {"sub": 42}, {"iss": [ISSUER]},
                 {"exp": str(now + 3600)}, {"nbf": True}, {"jti": 7}]:
        tok = raw_token({**base, **edit})
        resp, request_id = send(mg, "GET", "/admin/x", tok=tok, label="claimtype")
        refused(resp, upstream, request_id, (401,), ("jwt_malformed",), json.dumps(edit))
    for cty in ["JWT", "application/jwt", "Application/JWT"]:
        resp, request_id = send(mg, "GET", "/admin/x", tok=raw_token(base, {"cty": cty}), label="cty")
        refused(resp, upstream, request_id, (401,), ("jwt_unsupported_type",), cty)
    resp, request_id = send(mg, "GET", "/admin/x", tok=raw_token({**base, "aud": ["a", "b"]}), label="aud-list")
    passed(resp, upstream, request_id)
    still_enforces(mg, upstream)


def test_non_ascii_claim_is_copied_as_utf8_and_trimmable_values_are_not(mg, upstream):
    resp, request_id = send(mg, "GET", "/admin/x", tok=token("José-中文"), label="utf8-claim",
                            headers={"x-user": "forged"})
    seen = passed(resp, upstream, request_id)
    # The echo upstream (Python) reads header bytes as Latin-1: undo that to see the bytes sent.
    assert seen["headers"]["x-user"].encode("latin-1").decode("utf-8") == "José-中文"
    resp, request_id = send(mg, "GET", "/admin/x", tok=token(" admin"), label="space-claim",
                            headers={"x-user": "admin"})
    seen = passed(resp, upstream, request_id)
    assert "x-user" not in seen["headers"], seen["headers"]
    still_enforces(mg, upstream)


# --------------------------------------------------------------------------------------------------
# Cost of forged tokens


def test_forged_tokens_without_kid_are_rate_limited_before_verification(mg, upstream):
    bad_sig = "meshguard.jwt.main.jwt_bad_signature"
    before = mg.stat(bad_sig) or 0
    outcomes = []
    for _ in range(6):
        resp, request_id = send(mg, "GET", "/limited/x", tok=forged_without_kid(), label="forged")
        outcomes.append(resp.json()["reason"])
        assert not reached(upstream, request_id)
    # Three forged tokens were verified (and refused); the rest were limited before any check.
    assert outcomes == ["jwt_bad_signature"] * 3 + ["rate_limited"] * 3, outcomes
    deadline = time.monotonic() + 5
    while (mg.stat(bad_sig) or 0) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (mg.stat(bad_sig) or 0) == before + 3
    still_enforces(mg, upstream)


# --------------------------------------------------------------------------------------------------
# Spellings found by the second adversarial pass: trailing '/', format suffixes, method overrides,
# parameter names that frameworks bind together.

SUFFIX_VARIANTS = ["/reports/", "/reports//", "/reports/.", "/reports/%2e", "/reports.json", "/REPORTS.JSON",
                   "/reports.xml/", "/admin.json", "/admin/"]


@pytest.mark.parametrize("path", SUFFIX_VARIANTS)
def test_trailing_slash_and_format_suffix_meet_the_protected_route(mg, upstream, path):
    """Express, Spring before 6, ASP.NET Core and Rails route these to the /reports and /admin
    handlers; the catch-all after those routes must not take them."""
    resp, request_id = send(mg, "GET", path, label="suffix")
    refused(resp, upstream, request_id, (401,), ("jwt_missing",), path)
    resp, request_id = send(mg, "GET", path, tok=token(), label="suffix-ok")
    assert passed(resp, upstream, request_id, path)["path"] == path


def test_owner_check_holds_with_a_trailing_slash(mg, upstream):
    resp, request_id = send(mg, "GET", "/users/alice/", tok=token("bob"), label="owner-slash")
    refused(resp, upstream, request_id, (403,), ("owner_mismatch",))
    resp, request_id = send(mg, "GET", "/users/bob/", tok=token("bob"), label="owner-slash-ok")
    passed(resp, upstream, request_id)
    still_enforces(mg, upstream)


@pytest.mark.parametrize("headers,path", [
    ({"x-http-method-override": "DELETE"}, "/public/accounts/alice"),
    ({"X-HTTP-Method": "DELETE"}, "/public/accounts/alice"),
    ({"x-method-override": "PUT"}, "/public/accounts/alice"),
    ({}, "/public/accounts/alice?_method=DELETE"),
    ({}, "/public/accounts/alice?_METHOD=delete"),
    ({}, "/public/accounts/alice?a=1&%5Fmethod=DELETE"),
])
def test_method_overrides_are_refused(mg, upstream, headers, path):
    """Rails, Laravel and Symfony (and ASP.NET Core or Express with their middleware) would run
    DELETE for this POST."""
    resp, request_id = send(mg, "POST", path, label="override", headers=headers, body=b"")
    refused(resp, upstream, request_id, (400,), ("method_invalid",), f"{headers} {path}")


def test_method_override_batch_then_vm_still_enforces(mg, upstream):
    for name in ("x-http-method-override", "x_http_method_override"):
        resp, request_id = send(mg, "POST", "/public/x", label="override-batch", headers={name: "DELETE"}, body=b"")
        assert resp.status == 400 and not reached(upstream, request_id), (name, resp.status)
    resp, request_id = send(mg, "POST", "/public/x?method=DELETE", label="not-override", body=b"")
    passed(resp, upstream, request_id)
    still_enforces(mg, upstream)


@pytest.mark.parametrize("query", [
    "user_id=alice",
    "USER_ID=alice",
    "user_id=bob&USER_ID=alice",
    "user_id=bob&user.id=alice",
    "user_id=bob&user+id=alice",
    "user_id=bob&user%5Bid=alice",
    "user_id=bob&+user_id=alice",
])
def test_owner_query_parameter_in_every_spelling(mg, upstream, query):
    """ASP.NET Core binds query names in any case; PHP reads '.', ' ' and '[' as '_' (the last
    value wins): each spelling is the same parameter."""
    resp, request_id = send(mg, "GET", f"/orders?{query}", tok=token("bob"), label="owner-query")
    refused(resp, upstream, request_id, (403,), ("owner_mismatch",), query)


def test_owner_query_and_body_field_spellings_then_vm_still_enforces(mg, upstream):
    resp, request_id = send(mg, "GET", "/orders?user_id=bob&page=2", tok=token("bob"), label="owner-query-ok")
    passed(resp, upstream, request_id)
    # The body field also in the query (Rails, Laravel, Flask's request.values merge them).
    resp, request_id = send(mg, "POST", "/transfer?from=alice", tok=token("bob"), label="owner-both",
                            headers={"content-type": "application/json"}, body=b'{"from":"bob"}')
    refused(resp, upstream, request_id, (403,), ("owner_mismatch",))
    # Form fields in two spellings are one repeated field (ASP.NET Core binds either).
    resp, request_id = send(mg, "POST", "/transfer", tok=token("bob"), label="owner-form",
                            headers={"content-type": "application/x-www-form-urlencoded"},
                            body=b"from=bob&FROM=alice")
    refused(resp, upstream, request_id, (403,), ("owner_mismatch",))
    resp, request_id = send(mg, "POST", "/transfer", tok=token("bob"), label="owner-form-ok",
                            headers={"content-type": "application/x-www-form-urlencoded"}, body=b"from=bob")
    passed(resp, upstream, request_id)
    still_enforces(mg, upstream)


@pytest.mark.parametrize("query", ["role=admin", "ROLE=admin", "profile[isAdmin]=1"])
def test_read_only_fields_set_through_the_query_are_refused(mg, upstream, query):
    """Rails' params, PHP's $_REQUEST, Laravel and Flask's request.values merge the query with
    the body: a read-only field in the query is mass assignment too."""
    resp, request_id = send(mg, "POST", f"/profile?{query}", tok=token(), label="ro-query",
                            headers={"content-type": "application/json"}, body=b'{"name":"x"}')
    refused(resp, upstream, request_id, (400,), ("mass_assignment",), query)
    resp, request_id = send(mg, "POST", "/profile?page=2", tok=token(), label="ro-query-ok",
                            headers={"content-type": "application/json"}, body=b'{"name":"x"}')
    passed(resp, upstream, request_id)


@pytest.mark.parametrize("value", ["Bearer\t{t}", "Bearer{t}", "JWT {t}", "Token {t}", "{t}"])
def test_a_token_no_source_reads_is_refused(mg, upstream, value):
    """A lenient service could parse these as a bearer token meshguard never checked."""
    resp, request_id = send(mg, "GET", "/admin/x", label="unread", headers={"authorization": value.format(t=token())})
    refused(resp, upstream, request_id, (401,), ("jwt_malformed",), value)


@pytest.mark.parametrize("forged", ["%73ession={f}; session={g}", "SESSION={f}; session={g}",
                                    "x=1, session={f}; session={g}"])
def test_cookie_spellings_that_frameworks_read_as_the_token_cookie_are_refused(mg, upstream, forged):
    """Rack 2 and PHP decode cookie names (Rack 2 also splits on ','), and keep the first copy:
    a forged copy next to the verified cookie would reach a service that reads it (forward: true)."""
    good, bad = token(), token("mallory")
    resp, request_id = send(mg, "GET", "/viacookie/x", label="cookie-forged",
                            headers={"cookie": forged.format(f=bad, g=good)})
    refused(resp, upstream, request_id, (401,), ("jwt_malformed",), forged)
    resp, request_id = send(mg, "GET", "/viacookie/x", label="cookie-ok", headers={"cookie": f"session={good}; x=1"})
    passed(resp, upstream, request_id)


def test_an_access_token_parameter_no_provider_reads_is_refused(mg, upstream):
    """Envoy's jwt_authn (and many services) read `access_token` by default: next to the verified
    header token it would reach them unverified."""
    resp, request_id = send(mg, "GET", f"/admin/x?access_token={token('mallory')}", tok=token(), label="at-forged")
    refused(resp, upstream, request_id, (401,), ("jwt_malformed",))
    resp, request_id = send(mg, "GET", "/admin/x?access_token=not-a-token", tok=token(), label="at-ok")
    passed(resp, upstream, request_id)
