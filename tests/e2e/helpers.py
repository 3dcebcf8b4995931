"""What every e2e test file shares when it sends a request and checks the answer (re-exported by
harness: use `harness.X` or `from harness import X`).

- `rid(label)`: a request id unique in the run; `get`/`post`/`call`: a request carrying one.
- `reached_upstream`, `seen_upstream`, `received`, `upstream_records`: what the echo upstream got.
- `assert_problem`: a meshguard refusal (status, RFC 9457 body, challenge); `assert_ok`: a pass.
- `counter`: a meshguard counter; `worker_connections`: connections per worker; `wait_for`: a
  bounded poll.
- `bearer`, `TokenIssuer`: tokens from a test issuer and the JWKS that verifies them.

Nothing here starts a process or reads the wall clock for an assertion.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import jwt as pyjwt

if TYPE_CHECKING:  # harness imports this module: no runtime import back
    from harness import EchoUpstream, Envoy, Response

# --------------------------------------------------------------------------------------------------
# Request ids and requests

_ids = itertools.count(1)


def rid(label: str) -> str:
    """A value unique in this run, for a request id or a rate-limit key (a counter, not randomness)."""
    return f"e2e-{label}-{next(_ids)}"


def bearer(tok: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tok}"}


def call(
    envoy: "Envoy",
    method: str,
    path: str,
    *,
    label: str = "req",
    tok: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
    timeout_s: float = 15.0,
    **request_args: Any,
) -> tuple["Response", str]:
    """One request with a fresh `x-request-id` (from `label`), the bearer `tok` and `headers` (which
    win over both); returns the response and its request id. `request_args` go to `Envoy.request`
    (`listener`, `ssl_context`)."""
    request_id = rid(label)
    hs = {"x-request-id": request_id, **(bearer(tok) if tok else {}), **(headers or {})}
    if content_type is not None:
        hs["content-type"] = content_type
    return envoy.request(method, path, headers=hs, body=body, timeout_s=timeout_s, **request_args), request_id


def get(envoy: "Envoy", path: str, tok: str | None = None, **kwargs: Any) -> tuple["Response", str]:
    """`call(envoy, "GET", path, tok=tok, ...)`."""
    return call(envoy, "GET", path, tok=tok, **kwargs)


def post(envoy: "Envoy", path: str, body: bytes, *, method: str = "POST",
         content_type: str | None = "application/json", **kwargs: Any) -> tuple["Response", str]:
    """A request with a body (JSON unless `content_type` says otherwise; None sends none)."""
    return call(envoy, method, path, body=body, content_type=content_type, **kwargs)


# --------------------------------------------------------------------------------------------------
# What reached the upstream


def upstream_records(upstream: "EchoUpstream", value: str, header: str = "x-request-id") -> list[dict[str, Any]]:
    """Every complete request the echo upstream recorded whose `header` equals `value`."""
    return [r for r in upstream.requests if r["headers"].get(header) == value]


def reached_upstream(upstream: "EchoUpstream", request_id: str) -> bool:
    return bool(upstream_records(upstream, request_id))


def seen_upstream(upstream: "EchoUpstream", request_id: str) -> dict[str, Any]:
    """The one record the upstream holds for `request_id` (asserts it arrived exactly once)."""
    found = upstream_records(upstream, request_id)
    assert len(found) == 1, f"{request_id} reached the upstream {len(found)} times"
    return found[0]


def received(upstream: "EchoUpstream", request_id: str) -> dict[str, Any]:
    """`seen_upstream` with the body decoded under `body`."""
    rec = dict(seen_upstream(upstream, request_id))
    rec["body"] = base64.b64decode(rec["body_b64"])
    return rec


# --------------------------------------------------------------------------------------------------
# Answers

PROBLEM_KEYS = {"type", "title", "status", "detail", "reason", "request_id"}


def assert_problem(
    resp: "Response",
    status: int,
    reason: str,
    request_id: str | None = None,
    upstream: "EchoUpstream | None" = None,
    *,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A meshguard refusal: `status`, an application/problem+json body with only the known keys,
    `reason` and its `type`, a title, the request id (when given), the bearer challenge a JWT
    refusal carries (RFC 6750), none of `secrets` anywhere in the body, and (with `upstream`) the
    request never reached the upstream. Returns the body."""
    assert resp.status == status, (resp.status, resp.body[:500])
    assert (resp.header("content-type") or "").split(";")[0].strip() == "application/problem+json"
    body = resp.json()
    assert set(body) <= PROBLEM_KEYS, f"unexpected keys {set(body) - PROBLEM_KEYS}"
    assert (body["status"], body["reason"]) == (status, reason), body
    assert body["type"] == f"urn:meshguard:problem:{reason}"
    assert isinstance(body["title"], str) and body["title"]
    if request_id is not None:
        assert body["request_id"] == request_id, body
    challenge = resp.header("www-authenticate")
    if status == 401:
        assert challenge is not None and challenge.startswith('Bearer realm="meshguard"')
        if reason == "jwt_missing":
            assert "error=" not in challenge, challenge  # RFC 6750 3.1: no error without credentials
        else:
            assert 'error="invalid_token"' in challenge, challenge
    elif status == 403 and reason.startswith("jwt_"):
        assert challenge is not None and 'error="insufficient_scope"' in challenge, challenge
    elif status == 503:
        assert challenge is None
    text = resp.body.decode("utf-8", "replace")
    for secret in secrets:
        assert secret not in text, "the reply leaks a value of the request"
    if upstream is not None and request_id is not None:
        assert not reached_upstream(upstream, request_id), "a refused request reached the upstream"
    return body


def assert_ok(resp: "Response", upstream: "EchoUpstream", request_id: str) -> dict[str, Any]:
    """200, and the request reached the upstream exactly once; returns the upstream's record."""
    assert resp.status == 200, (resp.status, resp.body[:300])
    return seen_upstream(upstream, request_id)


def counter(envoy: "Envoy", name: str) -> int:
    """A meshguard counter by name (Envoy may prefix wasm metrics); 0 before its first increment."""
    return envoy.stat(name) or 0


def worker_connections(envoy: "Envoy") -> dict[str, int]:
    """Downstream connections accepted per worker (`worker_N`) on the listeners, to prove a test's
    connections landed on more than one worker."""
    out: dict[str, int] = {}
    for name, value in envoy.stats(r"^listener\..*worker_\d+\.downstream_cx_total$").items():
        m = re.search(r"(worker_\d+)\.downstream_cx_total$", name)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + value
    return out


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.1) -> Any:
    """Polls `check` until it returns something true (returned) or `timeout_s` passes (raises)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


# --------------------------------------------------------------------------------------------------
# Tokens


@dataclass(eq=False)
class TokenIssuer:
    """A JWT issuer for tests: one private key (`alg` ES256, EdDSA, RS256, ...) under `kid`.
    `jwks()` is the JSON text of its public JWKS (for `local_jwks.inline_string`); `token(**claims)`
    signs iss, aud (unless None), `defaults`, iat (now) and exp (now + `lifetime_s`) with `claims` over them (a
    value None removes a claim). Envoy's clock is the wall clock, so iat/exp come from it."""

    issuer: str
    audience: str | None
    key: Any
    _: KW_ONLY
    kid: str
    alg: str
    lifetime_s: int = 3600
    defaults: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        self.defaults = dict(self.defaults or {})

    def jwks(self) -> str:
        jwk = pyjwt.get_algorithm_by_name(self.alg).to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return json.dumps({"keys": [jwk]})

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.issuer, "aud": self.audience, **self.defaults,
                                   "iat": now, "exp": now + self.lifetime_s}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return pyjwt.encode(payload, self.key, algorithm=self.alg, headers={"kid": self.kid})
