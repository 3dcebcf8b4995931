"""Response protection in a real Envoy, in front of an upstream that behaves like a careless API.

The upstream (`ApiUpstream`, HTTP/1.1) returns user records with a password, an SSN and card
numbers, long arrays, a 500 with a Python stack trace, gzip bodies when asked for them (one path
gzips whatever the client asks), chunked answers, its own CORS headers and framework banners.

Two listeners run the same plugin config:
- `main` (HTTP/1.1 and HTTP/2): Envoy's default header handling. Response headers leave before
  the body is read: a rewritten body loses its content-length, and a body refused after the
  headers left resets the stream (the client never gets the body).
- `hold`: the wasm filter has Envoy's `allow_on_headers_stop_iteration: true` and the plugin
  config says so (`allow_on_headers_stop_iteration`): headers wait for the body's verdict, a
  refused body is a 502 problem and a rewritten one gets its exact content-length.

A third listener, `gz`, puts Envoy's compressor before meshguard (the client's gzip preference is
honoured on the checked answer). `main` and `hold` pass the upstream's `server` header through (`server_header_transformation:
PASS_THROUGH`), so its removal by `security_headers` is visible. Tokens are ES256 against an
inline JWKS. Every wait is a bounded poll; no test asserts on latency.
"""

from __future__ import annotations

import copy
import gzip
import http.client
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock, Thread
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import harness

ISSUER = harness.TokenIssuer("https://issuer.response.test", "shop", ec.generate_private_key(ec.SECP256R1()),
                             kid="response-1", alg="ES256", defaults={"sub": "ada"})

PASSWORD = "hunter2-SECRET"
SSN = "078-05-1120"
CARDS = ["4111111111111111", "5500005555555559"]
TRACE_SECRET = "DB_PASSWORD=s3cr3t"
APP = "https://app.example.com"

rid = harness.rid
counter = harness.counter
token = ISSUER.token


# --------------------------------------------------------------------------------------------------
# The upstream


def user_text(uid: str) -> str:
    doc = {
        "id": int(uid) if uid.isdigit() else 0,
        "name": "Ada",
        "password": PASSWORD,
        "ssn": SSN,
        "email": "ada@example.com",
        "items": [{"sku": "a-1", "card": CARDS[0]}, {"sku": "b-2", "card": CARDS[1]}],
    }
    return json.dumps(doc, separators=(", ", ": "))


def stripped_text(uid: str, keep_ssn: bool = False) -> str:
    """The user record as meshguard must send it: the same bytes without the stripped members
    (each with the comma before it)."""
    text = user_text(uid).replace(f', "password": "{PASSWORD}"', "")
    if not keep_ssn:
        text = text.replace(f', "ssn": "{SSN}"', "")
    for card in CARDS:
        text = text.replace(f', "card": "{card}"', "")
    return text


TRACEBACK = f"""Traceback (most recent call last):
  File "/srv/app/views.py", line 42, in get_user
    row = db.execute(query)
  File "/srv/app/db.py", line 7, in execute
    raise OperationalError("connection refused ({TRACE_SECRET})")
sqlalchemy.exc.OperationalError: connection refused
"""


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gunicorn/20.1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, status: int, body: bytes, *, ctype: str = "application/json", chunked: bool = False,
              extra: dict[str, str] | None = None, trailers: dict[str, str] | None = None) -> None:
        seen = self.headers.get("accept-encoding") or ""
        self.server.seen.append((self.headers.get("x-request-id"), seen))  # type: ignore[attr-defined]
        gz = self.path.startswith("/always-gzip/") or ("gzip" in seen and self.path.startswith("/users/"))
        if gz:
            body = gzip.compress(body)
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("x-powered-by", "Express")
        self.send_header("x-aspnet-version", "4.0.30319")
        self.send_header("access-control-allow-origin", "*")
        if gz:
            self.send_header("content-encoding", "gzip")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if chunked:
            self.send_header("transfer-encoding", "chunked")
            if trailers:
                self.send_header("trailer", ", ".join(trailers))
            self.end_headers()
            for i in range(0, len(body), 7):
                piece = body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            tail = "".join(f"{k}: {v}\r\n" for k, v in (trailers or {}).items())
            self.wfile.write(b"0\r\n" + tail.encode() + b"\r\n")
        else:
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        q = parse_qs(url.query)
        head = parts[0]
        if head in ("users", "always-gzip", "report", "public") and len(parts) >= 2:
            self._send(200, user_text(parts[-1]).encode())
        elif head == "chunked":
            self._send(200, user_text(parts[-1]).encode(), chunked=True)
        elif head == "trailers":
            self._send(200, user_text(parts[-1]).encode(), chunked=True, trailers={"x-checksum": "abc123"})
        elif head == "jsonl":
            # JSON Lines (Go's json.Encoder in a loop): the second document holds the secret.
            self._send(200, (json.dumps({"id": 1}) + "\n" + user_text(parts[-1]) + "\n").encode())
        elif head == "trailing":
            self._send(200, ('{"id": 1}<script>' + PASSWORD + "</script>").encode())
        elif head == "ranged":
            whole = user_text(parts[-1]).encode()
            ask = self.headers.get("range")
            if ask:  # a static-file server: any range is served as bytes=10-
                self.server.seen.append((self.headers.get("x-request-id"), "range"))  # type: ignore[attr-defined]
                self.send_response(206)
                self.send_header("content-type", "application/json")
                self.send_header("content-range", f"bytes 10-{len(whole) - 1}/{len(whole)}")
                self.send_header("content-length", str(len(whole) - 10))
                self.end_headers()
                self.wfile.write(whole[10:])
            else:
                self._send(200, whole)
        elif head == "twoct":
            self._send(200, user_text(parts[-1]).encode(), extra={"content-type": "application/json"})
        elif head == "ndjson":
            self._send(200, user_text(parts[-1]).encode(), ctype="application/x-ndjson")
        elif head == "big":
            n = int(q.get("n", ["100"])[0])
            self._send(200, json.dumps({"id": 1, "password": PASSWORD, "pad": "x" * n}).encode(),
                       chunked="chunked" in q)
        elif head == "list":
            n = int(q.get("n", ["3"])[0])
            self._send(200, json.dumps({"items": list(range(n))}).encode(), chunked="chunked" in q)
        elif head in ("contract", "contract-strip", "contract-report"):
            docs = {
                "ok": {"id": 1, "name": "n"},
                "extra": {"id": 1, "name": "n", "internal_notes": "SECRET-NOTES"},
                "wrong": {"id": "one", "name": "n"},
            }
            self._send(200, json.dumps(docs[parts[-1]]).encode())
        elif head in ("crash", "raw-crash"):
            self._send(500, TRACEBACK.encode(), ctype="text/plain",
                       extra={"x-debug-trace": "views.py:42", "set-cookie": "debug_session=leak"})
        elif head == "api":
            self._send(200, json.dumps({"orders": [1, 2]}).encode(), extra={"x-request-id": self.headers.get("x-request-id") or ""})
        elif head == "notfound":
            self._send(404, json.dumps({"error": "no such user", "password": PASSWORD}).encode())
        else:
            self._send(404, b'{"error":"unknown path"}')

    do_HEAD = do_GET
    do_POST = do_GET
    do_OPTIONS = do_GET


class ApiUpstream:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiHandler)
        self.server.daemon_threads = True
        self.server.seen = []  # type: ignore[attr-defined]
        self.thread = Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def seen(self, request_id: str) -> list[str]:
        """The accept-encoding values the upstream saw for a request id."""
        return [ae for r, ae in list(self.server.seen) if r == request_id]  # type: ignore[attr-defined]

    def __enter__(self) -> "ApiUpstream":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------------
# Config

STRIP = ["/password", "/items/*/card", {"pointer": "/ssn", "visible_to": {"scopes": ["pii:read"]}}]
CONTRACT = {"type": "object", "required": ["id"], "additionalProperties": False,
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}

CONFIG: dict[str, Any] = {
    "jwt_providers": {
        "local": {"issuer": ISSUER.issuer, "audiences": [ISSUER.audience],
                  "local_jwks": {"inline_string": ISSUER.jwks()}},
    },
    "security_headers": {
        "set": {"referrer-policy": "no-referrer"},
        "remove": ["x-debug-trace"],
        "strict_transport_security": {"max_age_seconds": 31536000, "include_subdomains": True},
    },
    "mask_upstream_errors": True,
    "cors": {
        "allow_origins": [APP, "*.example.org"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["authorization", "content-type"],
        "expose_headers": ["x-request-id"],
        "allow_credentials": True,
        "max_age_seconds": 600,
    },
    "routes": [
        {"name": "user", "match": {"methods": ["GET", "HEAD"], "path": "/users/{id}"},
         "jwt": {"providers": ["local"], "allow_missing": True}, "response": {"strip_fields": STRIP}},
        {"name": "chunked", "match": {"prefix": "/chunked/"}, "response": {"strip_fields": STRIP}},
        {"name": "trailers", "match": {"prefix": "/trailers/"}, "response": {"strip_fields": STRIP}},
        {"name": "gzip", "match": {"prefix": "/always-gzip/"}, "response": {"strip_fields": STRIP}},
        {"name": "list", "match": {"path": "/list"}, "response": {"max_array_len": 100}},
        {"name": "big", "match": {"path": "/big"}, "response": {"strip_fields": STRIP, "max_body_bytes": 1024}},
        {"name": "contract", "match": {"prefix": "/contract/"}, "response": {"body_schema": CONTRACT}},
        {"name": "contract-strip", "match": {"prefix": "/contract-strip/"},
         "response": {"body_schema": CONTRACT, "on_schema_mismatch": "strip"}},
        {"name": "contract-report", "match": {"prefix": "/contract-report/"},
         "response": {"body_schema": CONTRACT, "on_schema_mismatch": "report"}},
        {"name": "crash", "match": {"prefix": "/crash"}},
        {"name": "raw-crash", "match": {"prefix": "/raw-crash"}, "mask_upstream_errors": False},
        {"name": "notfound", "match": {"prefix": "/notfound"}, "response": {"strip_fields": STRIP}},
        {"name": "orders", "match": {"path": "/api/orders"}, "jwt": {"providers": ["local"], "scopes": ["orders:read"]}},
        {"name": "public", "match": {"prefix": "/public/"}, "cors": {"allow_origins": ["*"]}},
        {"name": "report", "match": {"prefix": "/report/"}, "mode": "report",
         "response": {"strip_fields": STRIP, "max_array_len": 1}},
        # Last: the upstream's other labellings and framings of the user record.
        {"name": "labels", "match": {"methods": ["GET"], "path": "/{kind}/{uid}"},
         "response": {"strip_fields": STRIP}},
    ],
}

HOLD_CONFIG = {**CONFIG, "allow_on_headers_stop_iteration": True}
COMPRESSOR = {
    "name": "envoy.filters.http.compressor",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor",
        "compressor_library": {
            "name": "gzip",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"},
        },
    },
}
PASS_SERVER = {"server_header_transformation": "PASS_THROUGH"}


@pytest.fixture(scope="module")
def api():
    with ApiUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def mg(module_envoys, meshguard_wasm, api) -> harness.Envoy:
    held = harness.wasm_filter(HOLD_CONFIG, wasm=meshguard_wasm)
    held["typed_config"]["config"]["allow_on_headers_stop_iteration"] = True
    hold = harness.http_listener("hold", [held], http2=True, hcm_overrides=PASS_SERVER)
    # Envoy's compressor before meshguard: it reads the client's accept-encoding first and
    # compresses the checked answer on the way out.
    gz = harness.http_listener("gz", [COMPRESSOR, harness.wasm_filter(CONFIG, wasm=meshguard_wasm)])
    config = harness.bootstrap(plugin_config=CONFIG, wasm=meshguard_wasm, http2=True, upstream_port=api.port,
                               hcm_overrides=PASS_SERVER, extra_listeners=[hold, gz])
    # Forward the upstream's HTTP/1.1 trailers (answers ended by trailers reach meshguard's
    # trailers callback).
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "echo":
            cluster["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}},
                }
            }
    return module_envoys(config=config)


# --------------------------------------------------------------------------------------------------
# Helpers


def get(envoy: harness.Envoy, path: str, *, label: str, listener: str | None = None, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[harness.Response, str]:
    request_id = rid(label)
    resp = envoy.request(method, path, headers={"x-request-id": request_id, **(headers or {})}, listener=listener)
    return resp, request_id


def h2_get(port: int, path: str, headers: dict[str, str], method: str = "GET",
           timeout_s: float = 10.0) -> tuple[harness.Response, bool]:
    """HTTP/2 with prior knowledge; returns the response (trailers after the headers) and
    whether the stream was reset."""
    a = harness.h2_request(port, method, path, headers, authority="response.test", timeout_s=timeout_s)
    return harness.Response(a.status, a.headers + a.trailers, a.body), a.reset


def assert_problem(resp: harness.Response, status: int, reason: str) -> dict[str, Any]:
    assert resp.status == status, (resp.status, resp.body[:300])
    assert (resp.header("content-type") or "").startswith("application/problem+json")
    doc = resp.json()
    assert (doc["status"], doc["reason"]) == (status, reason), doc
    return doc


def assert_clean(body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    for secret in (PASSWORD, *CARDS, TRACE_SECRET, "Traceback"):
        assert secret not in text, secret


# --------------------------------------------------------------------------------------------------
# strip_fields


@pytest.mark.parametrize("listener", [None, "hold"])
def test_sensitive_fields_are_stripped_and_the_rest_is_byte_identical(mg, listener):
    before = counter(mg, "meshguard.response.fields_stripped.applied")
    resp, _ = get(mg, "/users/7", label="strip", listener=listener)
    assert resp.status == 200
    assert resp.body.decode() == stripped_text("7")
    assert_clean(resp.body)
    assert SSN not in resp.body.decode()
    if listener == "hold":
        # Headers held until the body was rewritten: the exact new length.
        assert resp.header("content-length") == str(len(resp.body))
    else:
        # Headers left first: no stale length (HTTP/1.1 falls back to chunked).
        assert resp.header("content-length") is None
    assert counter(mg, "meshguard.response.fields_stripped.applied") == before + 1


def test_field_visible_to_a_scope_is_kept_for_that_token_only(mg):
    resp, _ = get(mg, "/users/8", label="pii", headers={"authorization": f"Bearer {token(scope='pii:read')}"})
    assert resp.body.decode() == stripped_text("8", keep_ssn=True)
    resp, _ = get(mg, "/users/8", label="nopii", headers={"authorization": f"Bearer {token(scope='users:read')}"})
    assert resp.body.decode() == stripped_text("8")


def test_chunked_upstream_answer_is_stripped(mg):
    for listener in (None, "hold"):
        resp, _ = get(mg, "/chunked/3", label="chunked", listener=listener)
        assert resp.status == 200
        assert resp.body.decode() == stripped_text("3")


@pytest.mark.parametrize("path", ["/users/5", "/chunked/5"])
def test_http2_answers_are_stripped(mg, path):
    for port in (mg.port, mg.listener_ports["hold"]):
        resp, reset = h2_get(port, path, {"x-request-id": rid("h2")})
        assert (resp.status, reset) == (200, False)
        assert resp.body.decode() == stripped_text("5")


def test_http2_answer_ended_by_trailers_is_stripped_and_keeps_its_trailers(mg):
    for port in (mg.port, mg.listener_ports["hold"]):
        resp, reset = h2_get(port, "/trailers/6", {"x-request-id": rid("h2-trailers")})
        assert (resp.status, reset) == (200, False)
        assert resp.body.decode() == stripped_text("6")
        assert resp.header("x-checksum") == "abc123"


def test_strip_applies_to_error_answers_too(mg):
    resp, _ = get(mg, "/notfound/1", label="404")
    assert resp.status == 404
    assert json.loads(resp.body) == {"error": "no such user"}


def test_head_request_passes_without_a_body_read(mg):
    resp, _ = get(mg, "/users/4", label="head", method="HEAD")
    assert resp.status == 200
    assert resp.body == b""


# --------------------------------------------------------------------------------------------------
# Compressed answers


def test_upstream_is_asked_for_identity_and_the_answer_is_checked(mg, api):
    resp, request_id = get(mg, "/users/9", label="ae", headers={"accept-encoding": "gzip, br"})
    assert api.seen(request_id) == ["identity"]
    assert resp.header("content-encoding") is None
    assert resp.body.decode() == stripped_text("9")


def test_compressor_before_meshguard_compresses_the_checked_answer(mg, api):
    resp, request_id = get(mg, "/users/11", label="gz-client", listener="gz", headers={"accept-encoding": "gzip"})
    assert api.seen(request_id) == ["identity"]
    assert resp.status == 200
    assert resp.header("content-encoding") == "gzip"
    assert gzip.decompress(resp.body).decode() == stripped_text("11")


def test_http2_answers_are_asked_for_identity_and_compressed_ones_are_refused(mg, api):
    request_id = rid("ae-h2")
    resp, reset = h2_get(mg.port, "/users/12", {"x-request-id": request_id, "accept-encoding": "gzip"})
    assert not reset and resp.status == 200
    assert api.seen(request_id) == ["identity"]
    assert resp.body.decode() == stripped_text("12")
    for port in (mg.port, mg.listener_ports["hold"]):
        resp, reset = h2_get(port, "/always-gzip/1", {"x-request-id": rid("gz-h2"), "accept-encoding": "gzip"})
        assert reset or resp.status == 502, (resp.status, resp.body[:100])
        body = resp.body
        if body[:2] == b"\x1f\x8b":
            raise AssertionError("a compressed answer reached the client unchecked")
        assert PASSWORD not in body.decode(errors="replace")


@pytest.mark.parametrize("listener", [None, "hold"])
def test_answer_compressed_anyway_is_refused_not_passed(mg, listener):
    resp, request_id = get(mg, "/always-gzip/1", label="gz", listener=listener, headers={"accept-encoding": "gzip"})
    assert_problem(resp, 502, "response_unreadable")
    rec = mg.wait_audit(request_id=request_id, reason="response_unreadable")
    assert (rec["decision"], rec["phase"], rec["status"]) == ("deny", "response", 502)


# --------------------------------------------------------------------------------------------------
# Caps and schema


def test_array_within_the_cap_passes(mg):
    for listener in (None, "hold"):
        resp, _ = get(mg, "/list?n=100", label="list100", listener=listener)
        assert resp.status == 200
        assert len(resp.json()["items"]) == 100


def test_long_array_is_a_502_when_headers_are_held(mg):
    for path in ("/list?n=101", "/list?n=101&chunked=1"):
        resp, request_id = get(mg, path, label="list101", listener="hold")
        assert_problem(resp, 502, "response_array_too_long")
        assert b"100" not in resp.body
        mg.wait_audit(request_id=request_id, reason="response_array_too_long", decision="deny")


def test_long_array_resets_the_stream_when_headers_already_left(mg):
    request_id = rid("list-reset")
    with pytest.raises((http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError)):
        resp = mg.request("GET", "/list?n=150", headers={"x-request-id": request_id})
        # Any body that did arrive must not be the array.
        assert b"149" not in resp.body
        raise AssertionError(f"expected a reset, got {resp.status} {resp.body[:100]!r}")
    resp, reset = h2_get(mg.port, "/list?n=150", {"x-request-id": rid("list-reset-h2")})
    assert reset or resp.status != 200
    assert b"149" not in resp.body
    mg.wait_audit(request_id=request_id, reason="response_array_too_long")


def test_answer_within_max_body_bytes_is_stripped(mg):
    for path in ("/big?n=500", "/big?n=500&chunked=1"):
        resp, _ = get(mg, path, label="big-ok", listener="hold")
        assert resp.status == 200
        assert resp.json()["pad"] == "x" * 500 and "password" not in resp.json()


def test_answer_over_max_body_bytes_is_a_502_when_headers_are_held(mg):
    for path in ("/big?n=5000", "/big?n=5000&chunked=1"):
        resp, request_id = get(mg, path, label="big", listener="hold")
        assert_problem(resp, 502, "response_too_large")
        assert PASSWORD not in resp.body.decode()
        rec = mg.wait_audit(request_id=request_id, reason="response_too_large")
        assert (rec["decision"], rec["phase"]) == ("deny", "response")


def test_answer_over_max_body_bytes_never_passes_unchecked_when_headers_already_left(mg):
    """Headers already went to the client: the stream is reset, over HTTP/1.1 and HTTP/2."""
    request_id = rid("big-reset")
    with pytest.raises((http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError)):
        resp = mg.request("GET", "/big?n=5000&chunked=1", headers={"x-request-id": request_id})
        assert PASSWORD not in resp.body.decode(errors="replace")
        raise AssertionError(f"expected a reset, got {resp.status} {resp.body[:100]!r}")
    resp, reset = h2_get(mg.port, "/big?n=5000", {"x-request-id": rid("big-reset-h2")})
    assert reset or resp.status != 200
    assert PASSWORD not in resp.body.decode(errors="replace")
    mg.wait_audit(request_id=request_id, reason="response_too_large")


@pytest.mark.parametrize("path", ["/jsonl/3", "/trailing/3"])
def test_anything_after_the_json_document_is_refused_not_passed(mg, path):
    """A second document (JSON Lines) or markup after the first is never passed unwalked: 502
    with the headers held, a reset once they left."""
    resp, request_id = get(mg, path, label="after-doc", listener="hold")
    assert_problem(resp, 502, "response_unreadable")
    assert PASSWORD not in resp.body.decode(errors="replace")
    mg.wait_audit(request_id=request_id, reason="response_unreadable")
    try:
        resp = mg.request("GET", path, headers={"x-request-id": rid("after-doc-reset")})
        assert PASSWORD not in resp.body.decode(errors="replace")
    except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError):
        pass
    resp, reset = h2_get(mg.port, path, {"x-request-id": rid("after-doc-h2")})
    assert PASSWORD not in resp.body.decode(errors="replace")


def test_client_range_is_dropped_so_the_whole_answer_is_checked(mg, api):
    """A slice starting inside a string parses as junk after a scalar: meshguard asks for the
    whole answer (no `range`), so the client gets the stripped document, never a slice."""
    resp, request_id = get(mg, "/ranged/4", label="range", headers={"range": "bytes=10-"})
    assert resp.status == 200, (resp.status, resp.body[:200])
    assert resp.body.decode() == stripped_text("4")
    assert "range" not in api.seen(request_id)


@pytest.mark.parametrize("path", ["/twoct/5", "/ndjson/5"])
def test_joined_and_streaming_json_content_types_are_read(mg, path):
    """Two content-type headers (Envoy joins them with a comma) or a streaming JSON type do not
    take the answer past strip_fields."""
    resp, _ = get(mg, path, label="ctype")
    assert resp.status == 200, (resp.status, resp.body[:200])
    assert resp.body.decode() == stripped_text("5")


def test_schema_mismatch_is_a_502_problem_when_headers_are_held(mg):
    resp, _ = get(mg, "/contract/ok", label="c-ok", listener="hold")
    assert resp.json() == {"id": 1, "name": "n"}
    for doc in ("extra", "wrong"):
        resp, request_id = get(mg, f"/contract/{doc}", label="c-bad", listener="hold")
        body = assert_problem(resp, 502, "response_schema_violation")
        assert "SECRET-NOTES" not in resp.body.decode()
        assert "detail" not in body  # the client learns nothing about the upstream's document
        rec = mg.wait_audit(request_id=request_id, reason="response_schema_violation")
        assert "failed" in rec["detail"]


def test_schema_strip_removes_members_the_schema_does_not_allow(mg):
    for listener in (None, "hold"):
        resp, _ = get(mg, "/contract-strip/extra", label="cs", listener=listener)
        assert resp.status == 200
        assert resp.body == b'{"id": 1, "name": "n"}'
    resp, _ = get(mg, "/contract-strip/wrong", label="cs-wrong", listener="hold")
    assert_problem(resp, 502, "response_schema_violation")


def test_schema_report_passes_and_audits(mg):
    resp, request_id = get(mg, "/contract-report/wrong", label="cr", listener="hold")
    assert resp.json() == {"id": "one", "name": "n"}
    rec = mg.wait_audit(request_id=request_id, reason="response_schema_violation")
    assert rec["decision"] == "report"


# --------------------------------------------------------------------------------------------------
# Masking


@pytest.mark.parametrize("listener", [None, "hold"])
def test_upstream_stack_trace_never_leaves_the_mesh(mg, listener):
    before = counter(mg, "meshguard.reason.upstream_error.deny")
    resp, request_id = get(mg, "/crash", label="crash", listener=listener)
    doc = assert_problem(resp, 500, "upstream_error")
    assert doc["request_id"] == request_id
    assert_clean(resp.body)
    assert resp.header("x-debug-trace") is None
    assert resp.header("set-cookie") is None, "none of the upstream's headers go with the mask"
    assert resp.header("x-powered-by") is None
    assert resp.header("cache-control") == "no-store"
    assert resp.header("x-content-type-options") == "nosniff"
    rec = mg.wait_audit(request_id=request_id, reason="upstream_error")
    assert (rec["decision"], rec["status"]) == ("deny", 500)
    assert "Traceback" not in json.dumps(rec)
    assert counter(mg, "meshguard.reason.upstream_error.deny") == before + 1


def test_masking_is_per_route(mg):
    resp, _ = get(mg, "/raw-crash", label="raw")
    assert resp.status == 500
    assert "Traceback" in resp.body.decode()
    # Security headers still apply.
    assert resp.header("x-debug-trace") is None


def test_http2_stack_trace_is_masked(mg):
    resp, reset = h2_get(mg.port, "/crash", {"x-request-id": rid("h2-crash")})
    assert not reset
    assert_problem(resp, 500, "upstream_error")
    assert_clean(resp.body)


# --------------------------------------------------------------------------------------------------
# Security headers


def test_banners_removed_and_api_defaults_set_on_upstream_answers(mg):
    resp, _ = get(mg, "/contract/ok", label="sh")
    assert resp.status == 200
    for banner in ("x-powered-by", "x-aspnet-version", "server"):
        assert resp.header(banner) is None, banner
    assert resp.header("x-content-type-options") == "nosniff"
    assert resp.header("strict-transport-security") == "max-age=31536000; includeSubDomains"
    assert resp.header("referrer-policy") == "no-referrer"


def test_own_denials_carry_the_security_headers(mg):
    resp, _ = get(mg, "/api/orders", label="401")
    assert_problem(resp, 401, "jwt_missing")
    assert resp.header("x-content-type-options") == "nosniff"
    assert resp.header("cache-control") == "no-store"
    assert resp.header("strict-transport-security") is not None


# --------------------------------------------------------------------------------------------------
# CORS


def preflight(envoy, path, origin, method="GET", headers="authorization", listener=None):
    hs = {"origin": origin, "access-control-request-method": method}
    if headers:
        hs["access-control-request-headers"] = headers
    return get(envoy, path, label="pf", method="OPTIONS", headers=hs, listener=listener)


def test_browser_preflight_to_a_jwt_route_is_answered_before_authentication(mg, api):
    before = len(api.server.seen)
    answered = counter(mg, "meshguard.response.cors_preflight_answered.applied")
    resp, request_id = preflight(mg, "/api/orders", APP, headers="authorization, content-type")
    assert resp.status == 204
    assert counter(mg, "meshguard.response.cors_preflight_answered.applied") == answered + 1
    assert resp.header("x-content-type-options") == "nosniff"
    assert resp.header("access-control-allow-origin") == APP
    assert resp.header("access-control-allow-credentials") == "true"
    assert resp.header("access-control-allow-methods") == "GET, POST"
    assert resp.header("access-control-allow-headers") == "authorization, content-type"
    assert resp.header("access-control-max-age") == "600"
    assert resp.header("www-authenticate") is None
    assert len(api.server.seen) == before, "a preflight never reaches the upstream"


def test_preflight_from_a_subdomain_pattern(mg):
    resp, _ = preflight(mg, "/api/orders", "https://shop.example.org", method="POST")
    assert resp.status == 204
    assert resp.header("access-control-allow-origin") == "https://shop.example.org"


def test_preflight_without_credentials_on_an_any_origin_route(mg):
    resp, _ = preflight(mg, "/public/1", "https://anyone.test", headers=None)
    assert resp.status == 204
    assert resp.header("access-control-allow-origin") == "*"
    assert resp.header("access-control-allow-credentials") is None


def test_preflight_from_a_foreign_origin_gets_no_allow_headers(mg):
    before = counter(mg, "meshguard.reason.cors_origin_not_allowed.deny")
    resp, request_id = preflight(mg, "/api/orders", "https://evil.test")
    assert_problem(resp, 403, "cors_origin_not_allowed")
    assert not [k for k, _ in resp.headers if k.lower().startswith("access-control-")]
    rec = mg.wait_audit(request_id=request_id, reason="cors_origin_not_allowed")
    assert (rec["phase"], rec["route"]) == ("preflight", "orders")
    assert counter(mg, "meshguard.reason.cors_origin_not_allowed.deny") == before + 1
    resp, _ = preflight(mg, "/api/orders", APP, method="DELETE")
    assert_problem(resp, 403, "cors_preflight_not_allowed")
    resp, _ = preflight(mg, "/api/orders", APP, headers="x-admin")
    assert_problem(resp, 403, "cors_preflight_not_allowed")


def test_actual_request_from_an_allowed_origin_to_a_jwt_route(mg):
    auth = {"authorization": f"Bearer {token(scope='orders:read')}", "origin": APP}
    resp, request_id = get(mg, "/api/orders", label="cors-ok", headers=auth)
    assert resp.status == 200
    assert resp.header("access-control-allow-origin") == APP
    assert resp.header("access-control-allow-credentials") == "true"
    assert resp.header("access-control-expose-headers") == "x-request-id"
    assert "origin" in (resp.header("vary") or "").lower()
    # The 401 of a missing token is readable by the page too.
    resp, _ = get(mg, "/api/orders", label="cors-401", headers={"origin": APP})
    assert_problem(resp, 401, "jwt_missing")
    assert resp.header("access-control-allow-origin") == APP


def test_actual_request_from_a_foreign_origin_gets_no_cors_headers(mg):
    auth = {"authorization": f"Bearer {token(scope='orders:read')}", "origin": "https://evil.test"}
    withheld = counter(mg, "meshguard.response.cors_headers_withheld.applied")
    resp, _ = get(mg, "/api/orders", label="cors-evil", headers=auth)
    assert resp.status == 200  # the server answers; the browser keeps it from the page
    assert counter(mg, "meshguard.response.cors_headers_withheld.applied") == withheld + 1
    assert not [k for k, _ in resp.headers if k.lower().startswith("access-control-")]
    # The upstream's own `access-control-allow-origin: *` is gone too.


# --------------------------------------------------------------------------------------------------
# Report mode


def test_report_mode_changes_nothing_and_audits_what_it_would_do(mg):
    resp, request_id = get(mg, "/report/2", label="report")
    assert resp.body.decode() == user_text("2")
    rec = mg.wait_audit(request_id=request_id, reason="fields_stripped")
    assert (rec["decision"], rec["phase"]) == ("report", "response")
    assert counter(mg, "meshguard.response.fields_stripped.report") >= 1


# --------------------------------------------------------------------------------------------------
# Bad config


@pytest.mark.parametrize("patch,path", [
    ({"routes": [{"name": "a", "match": {"prefix": "/a"}, "response": {"strip_fields": ["password"]}}]},
     "routes[0].response.strip_fields[0]"),
    ({"routes": [{"name": "a", "match": {"prefix": "/a"}, "response": {"strip_fields": ["/a~9"]}}]},
     "routes[0].response.strip_fields[0]"),
    ({"routes": [{"name": "a", "match": {"prefix": "/a"}, "response": {"body_schema": {"type": "strng"}}}]},
     "routes[0].response.body_schema.type"),
    ({"cors": {"allow_origins": ["*"], "allow_credentials": True}}, "cors.allow_origins[0]"),
    ({"routes": [{"name": "a", "match": {"prefix": "/a"},
                  "cors": {"allow_origins": ["https://x.test", "*"], "allow_credentials": True}}]},
     "routes[0].cors.allow_origins[1]"),
])
def test_bad_config_is_refused_with_its_json_path(patch, path, meshguard_wasm, tmp_path):
    config = copy.deepcopy(patch)
    code, out = harness.validate(config, wasm=meshguard_wasm, workdir=tmp_path)
    assert code != 0
    assert f"{path}:" in out, out[-2000:]


def test_envoy_own_upstream_failure_text_is_masked_too(envoys, meshguard_wasm):
    # A port nothing listens on: Envoy answers 503 "upstream connect error ... connection refused".
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    config = {"mask_upstream_errors": True, "routes": [{"name": "any", "match": {"prefix": "/"}}]}
    envoy = envoys(plugin_config=config, wasm=meshguard_wasm, upstream_port=dead)
    resp, request_id = get(envoy, "/anything", label="dead")
    assert_problem(resp, 503, "upstream_error")
    assert b"upstream connect error" not in resp.body
    envoy.wait_audit(request_id=request_id, reason="upstream_error", decision="deny")
