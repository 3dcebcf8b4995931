"""JWT authentication in a real Envoy, with a real JWKS HTTP server behind an Envoy cluster.

Two Envoys:

- `mg` (`--concurrency 1`): providers with remote keys (`idp`, fetched through the cluster `idp`
  from the JWKS server thread below; `rot`, `refresh`, `down`, `big` and `nocluster` for
  rotation, outages, an oversize JWKS and a missing cluster) and
  inline keys (`local_jwks.inline_string`: `local`, `fwd`, `params`). It serves the pass paths
  (RS256, ES256, EdDSA), every rejection with its reason, status and challenge, scopes and
  claims, token sources, `allow_missing`, report mode, header forwarding and stripping, the
  verified-token cache, counters and audit lines, and key rotation without restarting Envoy.
- `start` (`--concurrency 2`), started with its JWKS server holding every answer: a request
  that arrives before the keys waits and passes once they arrive; a JWKS that never answers
  gives 503 `jwks_unavailable`, never 200; and the JWKS server counts how often the two workers
  fetch (they share one key set, one refresh schedule and one fetch lease through Envoy's shared
  data).

Tokens are minted here with `cryptography` (RS256, PS256, ES256, EdDSA, HS256) so that headers can
carry anything (`alg: none`, `crit`, `cty`). Every token gets its own `jti`, so a fresh token is
never a verified-token cache hit unless a test reuses it on purpose. Envoy's clock is the wall
clock, so times are relative to `time.time()` with margins far from every boundary.

Every wait is a bounded poll; no test asserts on latency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import harness
from harness import (
    assert_ok, assert_problem, bearer, counter, get, post, reached_upstream, rid, wait_for,
    worker_connections,
)

ISSUER = "https://idp.meshguard.test"
API = "api.meshguard.test"
JWKS_PATH = "/.well-known/jwks.json"

# --------------------------------------------------------------------------------------------------
# Keys and tokens

_KEYS: dict[str, tuple[str, Any]] = {
    "rsa-a": ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "ec-a": ("ES256", ec.generate_private_key(ec.SECP256R1())),
    "ed-a": ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    # Rotation: published later.
    "rsa-b": ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    # Never published anywhere.
    "rsa-x": ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
}
PASS_KIDS = ["rsa-a", "ec-a", "ed-a"]
MINTED: list[str] = []  # every token sent, to prove none of them reaches the log
_jti = itertools.count(1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk(kid: str) -> dict[str, Any]:
    alg, key = _KEYS[kid]
    pub = key.public_key()
    if alg in ("RS256", "PS256"):
        out = pyjwt.algorithms.RSAAlgorithm.to_jwk(pub, as_dict=True)
    elif alg == "ES256":
        out = pyjwt.algorithms.ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        out = pyjwt.algorithms.OKPAlgorithm.to_jwk(pub, as_dict=True)
    out.update({"kid": kid, "alg": alg, "use": "sig"})
    return out


def jwks(*kids: str) -> dict[str, Any]:
    return {"keys": [jwk(k) for k in kids]}


def rsa_public_pem(kid: str) -> bytes:
    return _KEYS[kid][1].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(alg: str, key: Any, msg: bytes) -> bytes:
    if alg == "RS256":
        return key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256":
        return key.sign(msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return key.sign(msg)
    if alg == "HS256":
        return hmac.new(key, msg, hashlib.sha256).digest()
    raise ValueError(alg)


def claims(**over: Any) -> dict[str, Any]:
    """Good claims for ISSUER/API, valid for 10 minutes; `over` changes them (None removes)."""
    now = int(time.time())
    c: dict[str, Any] = {"iss": ISSUER, "aud": API, "sub": "alice", "iat": now - 5, "exp": now + 600,
                         "jti": f"t{next(_jti)}", "tenant": "a"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def token(kid: str = "rsa-a", *, alg: str | None = None, header: dict[str, Any] | None = None,
          key: Any = None, **over: Any) -> str:
    """A compact JWS signed with `kid`'s key (or `key`) as `alg` (default the key's algorithm).
    `header` adds or replaces header parameters (a None value removes one)."""
    key_alg, private = _KEYS[kid]
    alg = alg or key_alg
    h: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": kid}
    h.update(header or {})
    h = {k: v for k, v in h.items() if v is not None}
    signing_input = f"{b64url(json.dumps(h).encode())}.{b64url(json.dumps(claims(**over)).encode())}"
    sig = sign(alg, key if key is not None else private, signing_input.encode())
    tok = f"{signing_input}.{b64url(sig)}"
    MINTED.append(tok)
    return tok


def unsigned(alg_value: str) -> str:
    h = b64url(json.dumps({"alg": alg_value, "typ": "JWT"}).encode())
    tok = f"{h}.{b64url(json.dumps(claims()).encode())}."
    MINTED.append(tok)
    return tok


def tamper(tok: str) -> str:
    """The same token with one signature character changed (not the last: its low bits may be
    padding)."""
    head, sig = tok.rsplit(".", 1)
    c = sig[10]
    out = f"{head}.{sig[:10]}{'B' if c == 'A' else 'A'}{sig[11:]}"
    MINTED.append(out)
    return out


# --------------------------------------------------------------------------------------------------
# Helpers


def wait_quiet(server: harness.JwksServer, path: str, seconds: float) -> None:
    """Waits until `path` saw no fetch for `seconds` (so a `min_refetch_interval_seconds` of that
    length has passed since Envoy's last attempt)."""
    wait_for(f"{path} quiet for {seconds}s", lambda: server.quiet_for(path) >= seconds, timeout_s=seconds + 10)


# --------------------------------------------------------------------------------------------------
# The main Envoy

ALLOWED = ["RS256", "ES256", "EdDSA"]
LOCAL_JWKS = json.dumps(jwks("rsa-a", "ec-a", "ed-a"))
FORWARDING = {
    "forward_payload_header": "x-jwt-payload",
    "claim_to_headers": [{"claim_name": "sub", "header_name": "x-user"},
                         {"claim_name": "tenant", "header_name": "x-tenant"}],
}


def remote(path: str, **extra: Any) -> dict[str, Any]:
    return {"cluster": "idp", "path": path, "timeout_ms": 2000, **extra}


MAIN = {
    "audit": {"log_allows": True},
    "jwt_providers": {
        "idp": {
            "issuer": ISSUER, "audiences": [API], "algorithms": ALLOWED,
            "remote_jwks": remote(JWKS_PATH, authority="idp.meshguard.test",
                                  min_refetch_interval_seconds=1),
            "max_lifetime_seconds": 3600, **FORWARDING,
        },
        # Default algorithms (every asymmetric one), inline keys.
        "local": {"issuer": ISSUER, "audiences": [API], "local_jwks": {"inline_string": LOCAL_JWKS},
                  "max_lifetime_seconds": 3600, **FORWARDING},
        "fwd": {"issuer": ISSUER, "local_jwks": {"inline_string": LOCAL_JWKS}, "forward": True},
        "params": {"issuer": ISSUER, "local_jwks": {"inline_string": LOCAL_JWKS},
                   "from_params": ["access_token"], "from_cookies": ["session"]},
        # Rotation by the unknown-kid refetch (the periodic refresh is far away).
        "rot": {"issuer": ISSUER, "remote_jwks": remote("/rot/jwks", min_refetch_interval_seconds=1)},
        # Rotation by the periodic refresh (unknown-kid refetches at most every 30 s).
        "refresh": {"issuer": ISSUER, "remote_jwks": remote("/refresh/jwks", cache_duration_seconds=2)},
        # Its JWKS server is stopped after the first fetch.
        "down": {"issuer": ISSUER, "remote_jwks": {"cluster": "idp_down", "path": JWKS_PATH,
                                                   "timeout_ms": 1000, "cache_duration_seconds": 1}},
        # Its JWKS is larger than max_body_bytes.
        "big": {"issuer": ISSUER, "remote_jwks": remote("/big/jwks", max_body_bytes=1024)},
        # Its cluster is not in the Envoy config.
        "nocluster": {"issuer": ISSUER, "remote_jwks": {"cluster": "missing", "path": JWKS_PATH}},
    },
    "routes": [
        {"name": "idp", "match": {"prefix": "/idp/"}, "jwt": {"providers": ["idp"]}},
        {"name": "local", "match": {"prefix": "/local/"}, "jwt": {"providers": ["local"]}},
        {"name": "fwd", "match": {"prefix": "/fwd/"}, "jwt": {"providers": ["fwd"]}},
        {"name": "params", "match": {"prefix": "/params/"}, "jwt": {"providers": ["params"]}},
        {"name": "scoped", "match": {"prefix": "/scoped/"},
         "jwt": {"providers": ["local"], "scopes": ["users:read"]}},
        {"name": "claims", "match": {"prefix": "/claims/"},
         "jwt": {"providers": ["local"], "claims": {"tenant": ["a", "b"]}}},
        {"name": "optional", "match": {"prefix": "/optional/"},
         "jwt": {"providers": ["local"], "allow_missing": True}},
        {"name": "report", "match": {"prefix": "/report/"}, "mode": "report",
         "jwt": {"providers": ["local"]}},
        {"name": "rot", "match": {"prefix": "/rot/"}, "jwt": {"providers": ["rot"]}},
        {"name": "refresh", "match": {"prefix": "/refresh/"}, "jwt": {"providers": ["refresh"]}},
        {"name": "down", "match": {"prefix": "/down/"}, "jwt": {"providers": ["down"]}},
        {"name": "big", "match": {"prefix": "/big/"}, "jwt": {"providers": ["big"]}},
        {"name": "nocluster", "match": {"prefix": "/nocluster/"}, "jwt": {"providers": ["nocluster"]}},
        {"name": "open", "match": {"prefix": "/open/"}},
    ],
}


@pytest.fixture(scope="module")
def idp() -> Iterator[harness.JwksServer]:
    server = harness.JwksServer()
    server.serve(JWKS_PATH, jwks("rsa-a", "ec-a", "ed-a"))
    server.serve("/rot/jwks", jwks("rsa-a"))
    server.serve("/refresh/jwks", jwks("rsa-a"))
    server.serve("/big/jwks", {**jwks("rsa-a"), "padding": "x" * 200_000})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idp_down() -> Iterator[harness.JwksServer]:
    server = harness.JwksServer()
    server.serve(JWKS_PATH, jwks("rsa-a"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mg(module_envoys, meshguard_wasm, idp, idp_down) -> harness.Envoy:
    return module_envoys(
        plugin_config=MAIN, wasm=meshguard_wasm,
        extra_clusters=[harness.static_cluster("idp", idp.port),
                        harness.static_cluster("idp_down", idp_down.port)],
    )


# -- passes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["idp", "local"])
@pytest.mark.parametrize("kid", PASS_KIDS)
def test_valid_token_passes_and_is_removed_before_upstream(mg, upstream, route, kid):
    tok = token(kid)
    before = counter(mg, f"meshguard.jwt.{route}.verified")
    resp, request_id = get(mg, f"/{route}/items", tok, label=f"pass-{kid}")
    seen = assert_ok(resp, upstream, request_id)
    assert "authorization" not in seen["headers"], "the token must not reach the upstream by default"
    assert seen["headers"]["x-user"] == "alice" and seen["headers"]["x-tenant"] == "a"
    payload = seen["headers"]["x-jwt-payload"]
    assert payload == tok.split(".")[1], "forward_payload_header carries the verified payload segment"
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"] == "alice"
    assert counter(mg, f"meshguard.jwt.{route}.verified") == before + 1


def test_remote_keys_come_through_the_cluster_with_the_configured_authority(mg, idp):
    assert counter(mg, "meshguard.jwks.idp.fetch_ok") >= 1
    assert idp.hits(JWKS_PATH) >= 1
    assert "idp.meshguard.test" in idp.hosts


def test_forward_true_keeps_the_token(mg, upstream):
    tok = token("ec-a")
    resp, request_id = get(mg, "/fwd/x", tok, label="fwd")
    assert assert_ok(resp, upstream, request_id)["headers"]["authorization"] == f"Bearer {tok}"


def test_client_copies_of_injected_headers_are_stripped(mg, upstream):
    forged = {"x-user": "mallory", "x-tenant": "evil", "x-jwt-payload": "forged"}
    # With a verified token: the verified values replace the forged ones (one copy each).
    resp, request_id = get(mg, "/local/x", token("ed-a", sub="bob"), headers=forged, label="spoof")
    h = assert_ok(resp, upstream, request_id)["headers"]
    assert (h["x-user"], h["x-tenant"]) == ("bob", "a") and h["x-jwt-payload"] != "forged"
    # Anonymous (allow_missing) and routes without a JWT requirement: removed, nothing set.
    for path in ("/optional/x", "/open/x"):
        resp, request_id = get(mg, path, headers=forged, label="spoof-anon")
        h = assert_ok(resp, upstream, request_id)["headers"]
        assert not {"x-user", "x-tenant", "x-jwt-payload"} & set(h), (path, h)


def test_token_from_query_parameter_is_verified_and_stripped(mg, upstream):
    tok = token("rsa-a")
    resp, request_id = get(mg, f"/params/x?a=1&access_token={tok}&b=2", label="param")
    assert assert_ok(resp, upstream, request_id)["path"] == "/params/x?a=1&b=2"
    # Without from_headers, Authorization: Bearer stays a source next to the parameter (unlike
    # Envoy's jwt_authn): a bearer token is verified and stripped, never passed on unverified.
    resp, request_id = get(mg, "/params/x", token("rsa-a"), label="param-hdr")
    assert "authorization" not in assert_ok(resp, upstream, request_id)["headers"]
    resp, request_id = get(mg, f"/params/x?access_token={tok}", token("ec-a"), label="param-two")
    assert_problem(resp, 401, "jwt_malformed", request_id, upstream)


def test_token_from_cookie_is_verified_and_stripped(mg, upstream):
    tok = token("ec-a")
    resp, request_id = get(mg, "/params/y", headers={"cookie": f"theme=dark; session={tok}; lang=en"},
                            label="cookie")
    assert assert_ok(resp, upstream, request_id)["headers"]["cookie"] == "theme=dark; lang=en"


def test_reused_token_is_a_cache_hit(mg, upstream):
    tok = token("rsa-a")
    verified, hits = counter(mg, "meshguard.jwt.local.verified"), counter(mg, "meshguard.jwt.local.cache_hit")
    for _ in range(3):
        resp, request_id = get(mg, "/local/c", tok, label="cache")
        assert_ok(resp, upstream, request_id)
    assert counter(mg, "meshguard.jwt.local.verified") == verified + 1
    assert counter(mg, "meshguard.jwt.local.cache_hit") == hits + 2


@pytest.fixture(scope="module")
def two_workers(module_envoys, meshguard_wasm, idp, idp_down) -> harness.Envoy:
    return module_envoys(
        plugin_config=MAIN, wasm=meshguard_wasm, concurrency=2,
        extra_clusters=[harness.static_cluster("idp", idp.port),
                        harness.static_cluster("idp_down", idp_down.port)],
    )


def test_a_token_is_verified_once_per_envoy_not_once_per_worker(two_workers, upstream):
    """jwt_cache.shared_entries (on by default): the worker that verifies a token publishes it in
    shared data; the other worker takes it from there instead of checking the signature again."""
    tok = token("ec-a", sub="shared-once")
    before = worker_connections(two_workers)
    sent = 0
    # New connections until both workers have answered some (the kernel spreads them).
    while sent < 200:
        resp, request_id = get(two_workers, "/local/shared", tok, label="shared")
        assert_ok(resp, upstream, request_id)
        sent += 1
        after = worker_connections(two_workers)
        if sent >= 8 and all(after.get(w, 0) > before.get(w, 0) for w in after) and len(after) == 2:
            break
    assert len(after) == 2 and all(after[w] > before.get(w, 0) for w in after), after
    assert counter(two_workers, "meshguard.jwt.local.verified") == 1
    assert counter(two_workers, "meshguard.jwt.local.cache_hit") == sent - 1


# -- rejections ----------------------------------------------------------------------------------------

NOW = int(time.time())


def _jwe() -> str:
    tok = ".".join([b64url(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "rsa-a"}).encode()),
                    b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"t" * 16)])
    MINTED.append(tok)
    return tok


def _malformed(text: str) -> str:
    MINTED.append(text)
    return text


# (case id, token factory, status, reason). Factories run at test time (fresh times and jti).
REJECTIONS: list[tuple[str, Callable[[], str], int, str]] = [
    ("one-segment", lambda: _malformed("abc"), 401, "jwt_malformed"),
    ("two-segments", lambda: _malformed(token().rsplit(".", 1)[0]), 401, "jwt_malformed"),
    ("header-not-base64", lambda: _malformed("!!!." + token().split(".", 1)[1]), 401, "jwt_malformed"),
    ("header-not-json", lambda: _malformed(b64url(b"[1]") + "." + token().split(".", 1)[1]), 401,
     "jwt_malformed"),
    ("over-max-token-bytes", lambda: token(pad="x" * 9000), 401, "jwt_malformed"),
    ("alg-none", lambda: unsigned("none"), 401, "jwt_alg_not_allowed"),
    ("alg-None", lambda: unsigned("None"), 401, "jwt_alg_not_allowed"),
    ("alg-NONE", lambda: unsigned("NONE"), 401, "jwt_alg_not_allowed"),
    ("alg-nOnE", lambda: unsigned("nOnE"), 401, "jwt_alg_not_allowed"),
    # PS256 with the RS256-pinned key: not in idp's allow-list; the key's pin refuses it on local.
    ("alg-not-allowed-PS256", lambda: token("rsa-a", alg="PS256"), 401, "jwt_alg_not_allowed"),
    # The classic confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    ("alg-confusion-HS256-with-rsa-public-key",
     lambda: token("rsa-a", alg="HS256", key=rsa_public_pem("rsa-a")), 401, "jwt_alg_not_allowed"),
    ("unknown-kid", lambda: token("rsa-x"), 401, "jwt_unknown_kid"),
    ("bad-signature", lambda: tamper(token("rsa-a")), 401, "jwt_bad_signature"),
    ("signed-by-another-key", lambda: token("rsa-a", key=_KEYS["rsa-b"][1]), 401, "jwt_bad_signature"),
    ("crit", lambda: token("ec-a", header={"crit": ["exp"], "exp": NOW + 60}), 401, "jwt_crit_unsupported"),
    ("expired-beyond-skew", lambda: token(iat=int(time.time()) - 900, exp=int(time.time()) - 300), 401,
     "jwt_expired"),
    ("nbf-in-future", lambda: token(nbf=int(time.time()) + 300), 401, "jwt_not_yet_valid"),
    ("iat-in-future", lambda: token(iat=int(time.time()) + 300, exp=int(time.time()) + 900), 401,
     "jwt_not_yet_valid"),
    ("lifetime-over-max", lambda: token(iat=int(time.time()) - 5, exp=int(time.time()) + 7200), 401,
     "jwt_lifetime_too_long"),
    ("no-exp", lambda: token(exp=None), 401, "jwt_lifetime_too_long"),
    ("wrong-issuer", lambda: token(iss="https://evil.example"), 401, "jwt_issuer_mismatch"),
    ("no-issuer", lambda: token(iss=None), 401, "jwt_issuer_mismatch"),
    ("wrong-audience-string", lambda: token(aud="other.example"), 401, "jwt_audience_mismatch"),
    ("wrong-audience-array", lambda: token(aud=["other.example", "x"]), 401, "jwt_audience_mismatch"),
    ("no-audience", lambda: token(aud=None), 401, "jwt_audience_mismatch"),
    ("jwe-five-segments", _jwe, 401, "jwt_unsupported_type"),
    ("nested-jwt", lambda: token("rsa-a", header={"cty": "JWT"}), 401, "jwt_unsupported_type"),
]


@pytest.mark.parametrize("route", ["idp", "local"])
@pytest.mark.parametrize("case,make,status,reason", REJECTIONS, ids=[c[0] for c in REJECTIONS])
def test_rejection(mg, upstream, route, case, make, status, reason):
    tok = make()
    before = counter(mg, f"meshguard.jwt.{route}.{reason}")
    resp, request_id = get(mg, f"/{route}/r", tok, label=case)
    body = assert_problem(resp, status, reason, request_id, upstream)
    assert len(tok) < 20 or tok not in resp.body.decode(), "the reply echoes the token"
    assert counter(mg, f"meshguard.jwt.{route}.{reason}") == before + 1
    audit = mg.wait_audit(request_id=request_id)
    assert (audit["decision"], audit["reason"], audit["status"], audit["route"]) == ("deny", reason, status, route)


def test_missing_token_is_401_with_a_bare_challenge(mg, upstream):
    resp, request_id = get(mg, "/local/m", label="missing")
    assert_problem(resp, 401, "jwt_missing", request_id, upstream)
    assert resp.header("www-authenticate") == 'Bearer realm="meshguard"'
    # A header without the Bearer prefix is no token either.
    resp, request_id = get(mg, "/local/m", headers={"authorization": f"Basic {token()}"}, label="basic")
    assert_problem(resp, 401, "jwt_missing", request_id, upstream)


@pytest.mark.parametrize("label,over", [
    ("expired-within-skew", lambda now: {"iat": now - 900, "exp": now - 20}),
    ("nbf-within-skew", lambda now: {"nbf": now + 20}),
    ("iat-within-skew", lambda now: {"iat": now + 20}),
    ("audience-in-array", lambda now: {"aud": ["other.example", API]}),
])
def test_edges_that_pass(mg, upstream, label, over):
    resp, request_id = get(mg, "/idp/e", token("ec-a", **over(int(time.time()))), label=label)
    assert_ok(resp, upstream, request_id)


def test_two_different_tokens_are_refused(mg, upstream):
    resp, request_id = get(mg, "/params/t?access_token=" + token(),
                            headers={"cookie": "session=" + token()}, label="two")
    assert_problem(resp, 401, "jwt_malformed", request_id, upstream)


# -- scopes and claims -------------------------------------------------------------------------------


@pytest.mark.parametrize("label,over,reason", [
    ("scope-string", {"scope": "openid users:read"}, None),
    ("scp-array", {"scp": ["users:read", "other"]}, None),
    ("scp-string", {"scp": "users:read"}, None),
    ("scope-other", {"scope": "users:write"}, "jwt_insufficient_scope"),
    ("scope-prefix-only", {"scope": "users:readall"}, "jwt_insufficient_scope"),
    ("scp-other", {"scp": ["users:write"]}, "jwt_insufficient_scope"),
    ("no-scope", {}, "jwt_insufficient_scope"),
])
def test_scopes(mg, upstream, label, over, reason):
    resp, request_id = get(mg, "/scoped/s", token("ed-a", **over), label=label)
    if reason is None:
        assert_ok(resp, upstream, request_id)
        return
    assert_problem(resp, 403, reason, request_id, upstream)
    assert 'scope="users:read"' in resp.header("www-authenticate")


@pytest.mark.parametrize("label,tenant,reason", [
    ("listed", "b", None),
    ("array-any", ["c", "b"], None),
    ("other", "c", "jwt_claim_mismatch"),
    ("number", 1, "jwt_claim_mismatch"),
    ("absent", None, "jwt_claim_mismatch"),
])
def test_claims(mg, upstream, label, tenant, reason):
    resp, request_id = get(mg, "/claims/c", token("rsa-a", tenant=tenant), label=f"claim-{label}")
    if reason is None:
        assert_ok(resp, upstream, request_id)
    else:
        assert_problem(resp, 403, reason, request_id, upstream)


# -- allow_missing, report mode, audit ---------------------------------------------------------------


def test_allow_missing_admits_no_token_but_not_a_bad_one(mg, upstream):
    resp, request_id = get(mg, "/optional/a", label="anon")
    assert_ok(resp, upstream, request_id)
    resp, request_id = get(mg, "/optional/a", token(iss="https://evil.example"), label="anon-bad")
    assert_problem(resp, 401, "jwt_issuer_mismatch", request_id, upstream)
    resp, request_id = get(mg, "/optional/a", token("ec-a", sub="carol"), label="anon-good")
    assert assert_ok(resp, upstream, request_id)["headers"]["x-user"] == "carol"


@pytest.mark.parametrize("label,make,reason", [
    ("bad-signature", lambda: tamper(token()), "jwt_bad_signature"),
    ("expired", lambda: token(iat=int(time.time()) - 900, exp=int(time.time()) - 300), "jwt_expired"),
    ("missing", lambda: None, "jwt_missing"),
])
def test_report_mode_passes_bad_tokens_and_audits_them(mg, upstream, label, make, reason):
    before = counter(mg, f"meshguard.jwt.local.{reason}")
    resp, request_id = get(mg, "/report/x", make(), label=f"report-{label}")
    assert_ok(resp, upstream, request_id)
    audit = mg.wait_audit(request_id=request_id, decision="report")
    assert (audit["reason"], audit["route"]) == (reason, "report")
    assert counter(mg, f"meshguard.jwt.local.{reason}") == before + 1


def test_audit_lines_carry_iss_and_sub_and_never_the_token(mg, upstream):
    resp, request_id = get(mg, "/local/audit", token("ed-a", sub="dave"), label="audit-allow")
    assert_ok(resp, upstream, request_id)
    allow = mg.wait_audit(request_id=request_id)
    assert (allow["decision"], allow["iss"], allow["sub"]) == ("allow", ISSUER, "dave")
    resp, request_id = get(mg, "/scoped/audit", token("rsa-a", sub="erin"), label="audit-deny")
    assert_problem(resp, 403, "jwt_insufficient_scope", request_id, upstream)
    deny = mg.wait_audit(request_id=request_id)
    assert (deny["decision"], deny["iss"], deny["sub"]) == ("deny", ISSUER, "erin")
    log = mg.log_text()
    leaked = [t for t in MINTED if len(t.split(".")[-1]) > 20 and t.split(".")[-1] in log]
    assert not leaked, "a token (signature) appears in the Envoy log"
    payloads = {t.split(".")[1] for t in MINTED if t.count(".") == 2}
    assert not [p for p in payloads if len(p) > 20 and p in log], "a token payload appears in the log"


# -- key rotation and outages ------------------------------------------------------------------------


def test_new_kid_passes_without_restart_and_removed_key_fails_after_refetch(mg, upstream, idp):
    path = "/rot/jwks"
    old = token("rsa-a")
    resp, request_id = get(mg, "/rot/1", old, label="rot-old")
    assert_ok(resp, upstream, request_id)

    # The IdP starts signing with rsa-b and publishes it. The first rsa-b token triggers one
    # refetch (the unknown-kid refetch) and passes; Envoy is not restarted.
    idp.serve(path, jwks("rsa-a", "rsa-b"))
    wait_quiet(idp, path, 1.2)  # min_refetch_interval_seconds: 1
    hits = idp.hits(path)
    resp, request_id = get(mg, "/rot/2", token("rsa-b"), label="rot-new")
    assert_ok(resp, upstream, request_id)
    assert idp.hits(path) == hits + 1

    # The IdP drops rsa-a. Until the set is refreshed the old token still passes.
    idp.serve(path, jwks("rsa-b"))
    resp, request_id = get(mg, "/rot/3", old, label="rot-old-cached")
    assert_ok(resp, upstream, request_id)
    # A token with an unknown kid triggers a refetch: the set no longer has rsa-a...
    wait_quiet(idp, path, 1.2)
    resp, request_id = get(mg, "/rot/4", token("rsa-x"), label="rot-unknown")
    assert_problem(resp, 401, "jwt_unknown_kid", request_id, upstream)
    assert idp.hits(path) == hits + 2
    # ... so the old token (a verified-token cache entry until now) and a fresh one both fail.
    for tok, label in ((old, "rot-old-removed"), (token("rsa-a"), "rot-fresh-removed")):
        resp, request_id = get(mg, "/rot/5", tok, label=label)
        assert_problem(resp, 401, "jwt_unknown_kid", request_id, upstream)
    resp, request_id = get(mg, "/rot/6", token("rsa-b"), label="rot-new-again")
    assert_ok(resp, upstream, request_id)


def test_periodic_refresh_drops_a_removed_key(mg, upstream, idp):
    path = "/refresh/jwks"
    old = token("rsa-a")
    resp, request_id = get(mg, "/refresh/1", old, label="refresh-old")
    assert_ok(resp, upstream, request_id)
    idp.serve(path, jwks("rsa-b"))

    def refused() -> harness.Response | None:
        resp, request_id = get(mg, "/refresh/2", old, label="refresh-poll")
        if resp.status == 200:
            return None
        assert_problem(resp, 401, "jwt_unknown_kid", request_id, upstream)
        return resp

    # cache_duration_seconds: 2, so within a few seconds the set no longer has rsa-a.
    wait_for("the old key to leave the set", refused, timeout_s=10, every_s=0.2)
    resp, request_id = get(mg, "/refresh/3", token("rsa-b"), label="refresh-new")
    assert_ok(resp, upstream, request_id)


def test_jwks_server_down_keeps_the_last_good_keys(mg, upstream, idp_down):
    resp, request_id = get(mg, "/down/1", token("rsa-a"), label="down-before")
    assert_ok(resp, upstream, request_id)
    idp_down.stop()
    # cache_duration_seconds: 1: the next refresh fails, is counted, and the old keys stay.
    wait_for("a failed fetch", lambda: counter(mg, "meshguard.jwks.down.fetch_failed") >= 1)
    verified = counter(mg, "meshguard.jwt.down.verified")
    for i in range(3):
        resp, request_id = get(mg, f"/down/{i}", token("rsa-a"), label="down-after")
        assert_ok(resp, upstream, request_id)
    assert counter(mg, "meshguard.jwt.down.verified") == verified + 3, "fresh tokens were verified"
    assert "previous keys kept: true" in mg.log_text()


@pytest.mark.parametrize("provider", ["big", "nocluster"])
def test_unusable_jwks_source_is_503_never_200(mg, upstream, provider):
    """A JWKS over `max_body_bytes`, or a cluster Envoy does not have: the fetch fails, is
    counted, and requests get 503 `jwks_unavailable`."""
    wait_for("a failed fetch", lambda: counter(mg, f"meshguard.jwks.{provider}.fetch_failed") >= 1)
    resp, request_id = get(mg, f"/{provider}/x", token(), label=provider)
    assert_problem(resp, 503, "jwks_unavailable", request_id, upstream)
    if provider == "big":
        assert "is over max_body_bytes 1024" in mg.log_text()


# --------------------------------------------------------------------------------------------------
# Start-up: keys not there yet, a JWKS that never answers, and two workers sharing one fetch

START = {
    "jwt_providers": {
        "slow": {"issuer": ISSUER, "remote_jwks": {"cluster": "idp", "path": "/slow/jwks", "timeout_ms": 8000}},
        "never": {"issuer": ISSUER, "remote_jwks": {"cluster": "idp", "path": "/never/jwks", "timeout_ms": 500}},
        "periodic": {"issuer": ISSUER, "remote_jwks": {"cluster": "idp", "path": "/periodic/jwks",
                                                       "cache_duration_seconds": 1}},
        "rotate": {"issuer": ISSUER, "remote_jwks": {"cluster": "idp", "path": "/rotate/jwks",
                                                     "min_refetch_interval_seconds": 1}},
    },
    "routes": [
        {"name": "slow", "match": {"prefix": "/slow/"}, "jwt": {"providers": ["slow"]}},
        {"name": "never", "match": {"prefix": "/never/"}, "jwt": {"providers": ["never"]}},
        {"name": "rotate", "match": {"prefix": "/rotate/"}, "jwt": {"providers": ["rotate"]}},
        # A body check after the JWT: the body arrives while the request waits for keys.
        {"name": "slow-owner", "match": {"prefix": "/slow-owner/"}, "jwt": {"providers": ["slow"]},
         "owner": {"body_field": "owner", "claim": "sub"}},
    ],
}


@pytest.fixture(scope="module")
def held_idp() -> Iterator[harness.JwksServer]:
    server = harness.JwksServer()
    server.serve("/slow/jwks", jwks("rsa-a", "ec-a"))
    server.serve("/never/jwks", jwks("rsa-a"))
    server.serve("/periodic/jwks", jwks("rsa-a"))
    server.serve("/rotate/jwks", jwks("rsa-a"))
    server.hold("/slow/jwks")
    server.hold("/never/jwks")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def start(module_envoys, meshguard_wasm, held_idp) -> harness.Envoy:
    return module_envoys(plugin_config=START, wasm=meshguard_wasm, concurrency=2,
                         extra_clusters=[harness.static_cluster("idp", held_idp.port)])


def test_requests_wait_for_the_first_keys_or_get_503_never_200(start, upstream, held_idp):
    wait_for("the first fetches", lambda: held_idp.hits("/slow/jwks") and held_idp.hits("/never/jwks"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        slow = [pool.submit(get, start, "/slow/w", token(kid), label="slow") for kid in ("rsa-a", "ec-a")]
        # Bodies that arrive while the headers wait: passed on intact, or checked once keys come.
        body = json.dumps({"owner": "alice", "pad": "x" * 3000}).encode()
        with_body = pool.submit(post, start, "/slow/b", body, tok=token(), label="slow-body", timeout_s=20)
        owner_ok = pool.submit(post, start, "/slow-owner/b", body, tok=token(), label="slow-owner-ok", timeout_s=20)
        owner_bad = pool.submit(post, start, "/slow-owner/b", body, tok=token(sub="mallory"), label="slow-owner-bad",
                                timeout_s=20)
        # A client that gives up while waiting.
        gone_id = rid("slow-gone")
        with pytest.raises(OSError):
            start.request("GET", "/slow/gone", headers={"x-request-id": gone_id, **bearer(token())},
                          timeout_s=0.5)
        never = pool.submit(get, start, "/never/w", token(), label="never")
        # The never-answering JWKS: after its fetch timeout, 503, and the request never went on.
        resp, request_id = never.result(timeout=20)
        assert_problem(resp, 503, "jwks_unavailable", request_id, upstream)
        # The slow JWKS is still held: its requests are still waiting, not refused.
        waiting = [*slow, with_body, owner_ok, owner_bad]
        assert not any(f.done() for f in waiting), [f.result()[0].status for f in waiting if f.done()]
        held_idp.release("/slow/jwks")
        for f in slow:
            resp, request_id = f.result(timeout=20)
            assert_ok(resp, upstream, request_id)
        for f in (with_body, owner_ok):
            resp, request_id = f.result(timeout=20)
            assert assert_ok(resp, upstream, request_id)["body_b64"] == base64.b64encode(body).decode()
        resp, request_id = owner_bad.result(timeout=20)
        assert_problem(resp, 403, "owner_mismatch", request_id, upstream)
    assert not reached_upstream(upstream, gone_id)
    # Once the first fetch has failed, requests are refused at once (503), still never allowed.
    resp, request_id = get(start, "/never/again", token(), label="never-again")
    assert_problem(resp, 503, "jwks_unavailable", request_id, upstream)
    assert counter(start, "meshguard.jwt.never.jwks_unavailable") >= 2
    assert counter(start, "meshguard.jwks.never.fetch_failed") >= 1


def test_two_workers_share_keys_and_fetches(start, upstream, held_idp):
    """`--concurrency 2`: both workers serve requests, yet the JWKS server sees at most 2 fetches
    at start (Envoy's shared data cannot create a key atomically, so both workers may win the very
    first lease) and at most one more for a burst of unknown-kid tokens from both workers
    (one refetch per `min_refetch_interval_seconds`, default 30, per Envoy process)."""
    path = "/slow/jwks"
    held_idp.release(path)  # (already released when the test above ran first)
    wait_for("keys", lambda: counter(start, "meshguard.jwks.slow.fetch_ok") >= 1)
    at_start = held_idp.hits(path)
    assert 1 <= at_start <= 2, at_start

    def one(tok: str) -> int:
        # A new connection per request, so the kernel spreads them over both workers' sockets.
        return start.request("GET", "/slow/x", headers=bearer(tok), timeout_s=15).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, [token(k) for k in ("rsa-a", "ec-a") * 20]))
        assert statuses == [200] * 40
        unknown = list(pool.map(one, [token("rsa-x") for _ in range(20)]))
        assert unknown == [401] * 20
    workers = {k: v for k, v in start.stats(r"^listener\..*worker_\d+\.downstream_cx_total$").items()}
    assert len([v for v in workers.values() if v > 0]) == 2, f"both workers must serve: {workers}"
    assert held_idp.hits(path) <= at_start + 1, (at_start, held_idp.hits(path))
    total = sum(counter(start, f"meshguard.jwt.slow.{c}") for c in ("verified", "cache_hit"))
    assert total >= 40


def test_new_key_reaches_both_workers_with_one_refetch(start, held_idp):
    """A burst of tokens signed with a newly published key, spread over both workers: all pass,
    after a single unknown-kid refetch; the worker that did not fetch takes the new set from
    shared data."""
    path = "/rotate/jwks"
    wait_for("keys", lambda: counter(start, "meshguard.jwks.rotate.fetch_ok") >= 1)
    held_idp.serve(path, jwks("rsa-a", "rsa-b"))
    wait_quiet(held_idp, path, 1.2)  # min_refetch_interval_seconds: 1
    before = held_idp.hits(path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(
            lambda tok: start.request("GET", "/rotate/x", headers=bearer(tok), timeout_s=15).status,
            [token("rsa-b") for _ in range(30)]))
    assert statuses == [200] * 30
    assert held_idp.hits(path) == before + 1


def test_two_workers_refresh_once_per_period_not_once_each(start, held_idp):
    """`cache_duration_seconds: 1` with two workers: the refresh schedule lives in shared data,
    so the JWKS server sees about one fetch per second, not one per worker per second (which
    would be about 2 per second)."""
    path = "/periodic/jwks"
    wait_for("periodic fetches", lambda: held_idp.hits(path) >= 2)
    window_s = 4.0
    before = held_idp.hits(path)
    time.sleep(window_s)
    fetched = held_idp.hits(path) - before
    assert 2 <= fetched <= window_s + 1, fetched
