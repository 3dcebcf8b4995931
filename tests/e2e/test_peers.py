"""Peer identity (SPIFFE over mTLS) in a real Envoy over real mTLS: `routes[].peers` allow/deny
paths, requests without a client certificate or without a SPIFFE ID, certificates with two URI
SANs, Istio's waypoint filter state as an identity source, `forward_identity` headers (verified
values in, forged copies out), audit lines and counters; object-level (`routes[].owner`) and
token-binding (`routes[].binding`) rules with real JWTs once JWT verification is wired in.

The module makes its own PKI: one CA trusted by Envoy, a server certificate, and client
certificates for workloads in `cluster.local`, one in another trust domain, one without URI SAN,
one whose URI SAN is not a SPIFFE ID, two with two URI SANs (both orders), and one from a CA
Envoy does not trust. One Envoy serves every peer test through several listeners sharing one VM:

- `main`: TLS that requires a client certificate (what a sidecar's inbound listener does);
- `optional`: TLS where a client certificate is optional (validated when presented), so a
  route needing mTLS can be reached without one;
- `plain`: plaintext HTTP;
- `ambient`: plaintext, with `envoy.filters.http.set_filter_state` before meshguard copying the
  request header `x-test-peer-principal` into filter state `io.istio.peer_principal` (an
  `envoy.string`), standing in for what an Istio ambient waypoint sets from the HBONE peer;
- `lenient`: plaintext, another plugin config (`unmatched: allow`) in the same VM.

A second Envoy runs a property probe (tests/e2e/probe, a tiny proxy-wasm filter) that copies the
raw bytes of chosen properties into request headers: it pins down, for real, how Envoy encodes
`connection.sha256_peer_certificate_digest`, `connection.uri_san_peer_certificate` and the Istio
filter state, which the meshguard adapter decodes.

Every request carries its own x-request-id, so a test finds its own audit line and proves its
own request did (not) reach the upstream, whatever other tests sent before.
"""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import harness
from harness import assert_problem, bearer, counter, reached_upstream, rid, seen_upstream
from harness import DownstreamTls
from pki import CertFiles, Pki, client_context

TD = "spiffe://cluster.local"
FRONTEND = f"{TD}/ns/shop/sa/frontend"
LEGACY = f"{TD}/ns/shop/sa/legacy"
BILLING = f"{TD}/ns/billing/sa/api"
FOREIGN = "spiffe://partner.example/ns/shop/sa/frontend"
ROOT = f"{TD}/ns/admin/sa/root"

PEER_HEADER = "x-peer-spiffe-id"
SUBJECT_HEADER = "x-token-subject"
SIM_PRINCIPAL_HEADER = "x-test-peer-principal"
FORWARD = {"peer_header": PEER_HEADER, "subject_header": SUBJECT_HEADER}

PEERS = {
    "mode": "enforce",
    "unmatched": "deny",
    "audit": {"log_allows": True},
    "forward_identity": FORWARD,
    "routes": [
        {"name": "exact", "match": {"prefix": "/exact/"}, "peers": {"allow": [FRONTEND]}},
        {"name": "trust-domain", "match": {"prefix": "/td/"}, "peers": {"allow": [TD]}},
        {"name": "shop", "match": {"prefix": "/shop/"}, "peers": {"allow": [f"{TD}/ns/shop/*"]}},
        {"name": "deny-first", "match": {"prefix": "/deny-first/"},
         "peers": {"allow": [f"{TD}/ns/shop/*"], "deny": [LEGACY]}},
        {"name": "deny-only", "match": {"prefix": "/deny-only/"}, "peers": {"deny": [LEGACY]}},
        {"name": "mtls-only", "match": {"prefix": "/mtls-only/"}, "peers": {"require_mtls": True}},
        {"name": "open", "match": {"prefix": "/open/"}},
        {"name": "ambient", "match": {"prefix": "/ambient/"},
         "peers": {"source": "istio_peer_principal", "allow": [FRONTEND]}},
        {"name": "shadow", "match": {"prefix": "/shadow/"}, "mode": "report", "peers": {"allow": [FRONTEND]}},
    ],
}
# Same VM, another plugin config: nothing routed, everything let through, identities forwarded.
LENIENT = {"unmatched": "allow", "forward_identity": FORWARD, "routes": []}

PROBED = {
    "mtls": "connection|mtls",
    "uri_san": "connection|uri_san_peer_certificate",
    "digest": "connection|sha256_peer_certificate_digest",
    "bare_state": "io.istio.peer_principal",
    "state": "filter_state|io.istio.peer_principal",
}

# --------------------------------------------------------------------------------------------------
# Tokens: owner and binding rules need verified claims.

SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
KID = "peers-test-1"
ISSUER = "https://issuer.meshguard.test"
AUDIENCE = "shop"
# ES256 tokens valid for an hour from now (Envoy's clock is the wall clock).
IDP = harness.TokenIssuer(ISSUER, AUDIENCE, SIGNING_KEY, kid=KID, alg="ES256")
token = IDP.token

JWT_PROVIDERS = {
    "mesh": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": {"inline_string": IDP.jwks()}},
}


def x5t_s256(cert: CertFiles) -> str:
    """RFC 8705 `cnf["x5t#S256"]`: base64url (no padding) of the SHA-256 of the DER certificate."""
    return base64.urlsafe_b64encode(cert.der_sha256()).rstrip(b"=").decode("ascii")


# --------------------------------------------------------------------------------------------------
# PKI and Envoys


class Certs:
    """The module's PKI: CA, server certificate, client certificates and their TLS contexts."""

    def __init__(self, directory: Path):
        self.pki = Pki(directory / "trusted")
        self.server = self.pki.server()
        issue = self.pki.issue
        self.clients: dict[str, CertFiles] = {
            "frontend": issue("frontend", uris=(FRONTEND,)),
            "legacy": issue("legacy", uris=(LEGACY,)),
            "billing": issue("billing", uris=(BILLING,)),
            "foreign": issue("foreign", uris=(FOREIGN,)),
            # A DNS SAN is not a workload identity.
            "no-uri-san": issue("no-uri-san", dns=("frontend.shop.svc.cluster.local",)),
            "not-spiffe": issue("not-spiffe", uris=("https://frontend.shop.example/",)),
            "frontend+legacy": issue("frontend-legacy", uris=(FRONTEND, LEGACY)),
            "legacy+frontend": issue("legacy-frontend", uris=(LEGACY, FRONTEND)),
        }
        # Same SPIFFE ID as frontend, but from a CA Envoy does not trust.
        self.untrusted = Pki(directory / "untrusted", ca_name="rogue CA").issue("rogue-frontend", uris=(FRONTEND,))
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    def context(self, client: str | None) -> ssl.SSLContext:
        """TLS client context trusting the server, presenting client certificate `client` (None:
        no certificate; "untrusted": the rogue CA's)."""
        if client not in self._contexts:
            files = None if client is None else self.untrusted if client == "untrusted" else self.clients[client]
            self._contexts[client] = client_context(self.pki.ca, files)
        return self._contexts[client]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mg(module_envoys, meshguard_wasm, certs) -> harness.Envoy:
    meshguard = harness.wasm_filter(PEERS, wasm=meshguard_wasm)
    lenient = harness.wasm_filter(LENIENT, wasm=meshguard_wasm)
    simulated_waypoint = harness.set_filter_state_filter("io.istio.peer_principal", f"%REQ({SIM_PRINCIPAL_HEADER})%")
    server = certs.server
    return module_envoys(
        plugin_config=PEERS,
        wasm=meshguard_wasm,
        tls=DownstreamTls(server.cert, server.key, certs.pki.ca, require_client_certificate=True),
        http2=True,
        extra_listeners=[
            harness.http_listener(
                "optional", [meshguard],
                tls=DownstreamTls(server.cert, server.key, certs.pki.ca, require_client_certificate=False)),
            harness.http_listener("plain", [meshguard]),
            harness.http_listener("ambient", [simulated_waypoint, meshguard]),
            harness.http_listener("lenient", [lenient]),
        ],
    )


def call(
    envoy: harness.Envoy,
    certs: Certs,
    path: str,
    *,
    client: str | None = None,
    listener: str = "main",
    label: str = "req",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[harness.Response, str]:
    """One request through `listener` (TLS with `client`'s certificate on main/optional); returns
    the response and its request id."""
    tls = listener in ("main", "optional")
    return harness.call(envoy, method, path, label=label, headers=headers, body=body, timeout_s=10.0,
                        listener=listener, ssl_context=certs.context(client) if tls else None)


# --------------------------------------------------------------------------------------------------
# Allow and deny paths over mTLS

# (route prefix, client certificate, listener, expected reason or None for 200, what it shows)
PEER_CASES = [
    # exact ID
    ("/exact/", "frontend", "main", None, "the exact ID passes"),
    ("/exact/", "legacy", "main", "peer_not_allowed", "another workload of the same namespace"),
    ("/exact/", "foreign", "main", "peer_not_allowed", "same path, other trust domain"),
    # trust domain
    ("/td/", "frontend", "main", None, "any workload of the trust domain"),
    ("/td/", "billing", "main", None, "any namespace of the trust domain"),
    ("/td/", "foreign", "main", "peer_not_allowed", "foreign trust domain"),
    # /* prefix
    ("/shop/", "frontend", "main", None, "below the prefix"),
    ("/shop/", "legacy", "main", None, "below the prefix"),
    ("/shop/", "billing", "main", "peer_not_allowed", "other namespace"),
    ("/shop/", "foreign", "main", "peer_not_allowed", "same path below another trust domain"),
    # deny before allow
    ("/deny-first/", "frontend", "main", None, "allowed and not denied"),
    ("/deny-first/", "legacy", "main", "peer_not_allowed", "denied although an allow entry matches"),
    ("/deny-first/", "billing", "main", "peer_not_allowed", "not allowed"),
    # deny only: every identity but the denied one
    ("/deny-only/", "frontend", "main", None, "not denied"),
    ("/deny-only/", "foreign", "main", None, "not denied (no allow list)"),
    ("/deny-only/", "legacy", "main", "peer_not_allowed", "denied"),
    ("/deny-only/", "no-uri-san", "main", "peer_identity_missing", "a deny list is not dodged by hiding the ID"),
    ("/deny-only/", None, "optional", "peer_not_mtls", "nor by showing no certificate"),
    # no identity
    ("/exact/", "no-uri-san", "main", "peer_identity_missing", "certificate without URI SAN"),
    ("/exact/", "not-spiffe", "main", "peer_identity_missing", "URI SAN that is not a SPIFFE ID"),
    ("/td/", "no-uri-san", "main", "peer_identity_missing", "trust domain rules need an ID too"),
    # no client certificate
    ("/exact/", None, "optional", "peer_not_mtls", "TLS without a client certificate"),
    ("/exact/", None, "plain", "peer_not_mtls", "plaintext"),
    ("/mtls-only/", None, "optional", "peer_not_mtls", "require_mtls alone"),
    ("/mtls-only/", None, "plain", "peer_not_mtls", "require_mtls alone, plaintext"),
    ("/mtls-only/", "no-uri-san", "main", None, "require_mtls alone accepts any trusted certificate"),
    ("/mtls-only/", "frontend", "optional", None, "an optional certificate, presented, counts"),
    ("/exact/", "frontend", "optional", None, "an optional certificate, presented, carries the ID"),
]


@pytest.mark.parametrize(
    "prefix,client,listener,reason,why", PEER_CASES,
    ids=[f"{p.strip('/')}-{c or 'no-cert'}-{listener}" for p, c, listener, _, _ in PEER_CASES],
)
def test_peer_rules(mg, certs, upstream, prefix, client, listener, reason, why):
    resp, request_id = call(mg, certs, prefix + "item", client=client, listener=listener, label="rule")
    if reason is None:
        assert resp.status == 200, (why, resp.status, resp.body[:300])
        seen = seen_upstream(upstream, request_id)["headers"]
        expected_id = {"frontend": FRONTEND, "legacy": LEGACY, "billing": BILLING, "foreign": FOREIGN}.get(client)
        assert seen.get(PEER_HEADER) == expected_id, why
    else:
        body = assert_problem(resp, 403, reason, request_id)
        assert not reached_upstream(upstream, request_id), why
        # The client learns the reason, never the ID it presented or the rule it failed.
        assert "spiffe://" not in json.dumps(body)


def test_mtls_over_http2(mg, certs, upstream):
    # Fresh contexts: httpx sets ALPN (h2) on the context it is given, which would make later
    # HTTP/1.1 requests sharing a cached context negotiate h2.
    request_id = rid("h2")
    with httpx.Client(verify=client_context(certs.pki.ca, certs.clients["frontend"]), http2=True, timeout=10) as client:
        allowed = client.get(mg.https_url + "/exact/h2", headers={"x-request-id": request_id})
    assert allowed.http_version == "HTTP/2"
    assert allowed.status_code == 200
    assert allowed.json()["headers"][PEER_HEADER] == FRONTEND
    with httpx.Client(verify=client_context(certs.pki.ca, certs.clients["legacy"]), http2=True, timeout=10) as client:
        denied = client.get(mg.https_url + "/exact/h2")
    assert denied.status_code == 403 and denied.json()["reason"] == "peer_not_allowed"


def test_certificate_from_an_untrusted_ca_never_reaches_the_filter(mg, certs, upstream):
    """The SPIFFE ID is only as good as Envoy's certificate validation: a certificate from a CA
    outside the trust bundle is refused in the TLS handshake, on the required and the optional
    listener alike, so meshguard never sees its URI SAN."""
    for listener in ("main", "optional"):
        request_id = rid("untrusted")
        with pytest.raises(OSError):
            mg.request("GET", "/exact/x", headers={"x-request-id": request_id}, listener=listener,
                       ssl_context=certs.context("untrusted"))
        assert not reached_upstream(upstream, request_id)


# --------------------------------------------------------------------------------------------------
# Two URI SANs: Envoy exposes only the first


@pytest.mark.parametrize(
    "client,prefix,reason,seen",
    [
        # First SAN frontend: the second (legacy) is invisible, even to a deny list naming it.
        ("frontend+legacy", "/exact/", None, FRONTEND),
        ("frontend+legacy", "/deny-first/", None, FRONTEND),
        ("frontend+legacy", "/deny-only/", None, FRONTEND),
        # First SAN legacy: judged as legacy only.
        ("legacy+frontend", "/exact/", "peer_not_allowed", LEGACY),
        ("legacy+frontend", "/deny-first/", "peer_not_allowed", LEGACY),
    ],
)
def test_two_uri_sans_are_judged_by_the_first_only(mg, certs, upstream, client, prefix, reason, seen):
    """X.509-SVID allows exactly one URI SAN. `connection.uri_san_peer_certificate` carries only
    the first, so meshguard cannot see (nor refuse) a second one: keeping multi-SAN certificates
    out is the issuing CA's job. This pins the behaviour so a change in Envoy is noticed."""
    resp, request_id = call(mg, certs, prefix + "two-sans", client=client, label="two-sans")
    if reason is None:
        assert resp.status == 200, resp.body[:300]
        assert seen_upstream(upstream, request_id)["headers"][PEER_HEADER] == seen
    else:
        assert_problem(resp, 403, reason, request_id)
    assert mg.wait_audit(request_id=request_id).get("peer") == seen


# --------------------------------------------------------------------------------------------------
# Istio ambient waypoint: identity from filter state io.istio.peer_principal


@pytest.mark.parametrize(
    "principal,reason",
    [
        (FRONTEND, None),
        (LEGACY, "peer_not_allowed"),
        (None, "peer_not_mtls"),  # no filter state: no mTLS peer
        (f"{FRONTEND},{LEGACY}", "peer_identity_missing"),  # several SANs: no single identity
        ("https://frontend.example/", "peer_identity_missing"),
    ],
)
def test_waypoint_filter_state_is_the_identity_source(mg, certs, upstream, principal, reason):
    headers = {SIM_PRINCIPAL_HEADER: principal} if principal else {}
    resp, request_id = call(mg, certs, "/ambient/x", listener="ambient", headers=headers, label="ambient")
    if reason is None:
        assert resp.status == 200, resp.body[:300]
        assert seen_upstream(upstream, request_id)["headers"][PEER_HEADER] == FRONTEND
        assert mg.wait_audit(request_id=request_id)["peer"] == FRONTEND
    else:
        assert_problem(resp, 403, reason, request_id)


def test_identity_sources_do_not_mix(mg, certs):
    """A `connection` route ignores filter state, and a waypoint route ignores the connection's
    certificate: each route reads only the source it names."""
    resp, request_id = call(mg, certs, "/exact/x", listener="ambient",
                            headers={SIM_PRINCIPAL_HEADER: FRONTEND}, label="mix-conn")
    assert_problem(resp, 403, "peer_not_mtls", request_id)
    resp, request_id = call(mg, certs, "/ambient/x", client="frontend", label="mix-state")
    assert_problem(resp, 403, "peer_not_mtls", request_id)


# --------------------------------------------------------------------------------------------------
# forward_identity: the verified ID goes upstream; forged copies never do


FORGED = {PEER_HEADER: ROOT, SUBJECT_HEADER: "admin"}


@pytest.mark.parametrize(
    "prefix,client,listener,expected_peer",
    [
        ("/open/", "frontend", "main", FRONTEND),  # route without peer rules still forwards the ID
        ("/open/", "no-uri-san", "main", None),
        ("/open/", None, "optional", None),
        ("/open/", None, "plain", None),
        ("/exact/", "frontend", "main", FRONTEND),
        ("/mtls-only/", "no-uri-san", "main", None),
        ("/shadow/", "legacy", "main", LEGACY),  # report mode: let through, verified ID forwarded
    ],
)
def test_forged_identity_headers_are_replaced_or_removed(mg, certs, upstream, prefix, client, listener, expected_peer):
    resp, request_id = call(mg, certs, prefix + "fwd", client=client, listener=listener, headers=FORGED, label="fwd")
    assert resp.status == 200, resp.body[:300]
    seen = seen_upstream(upstream, request_id)["headers"]
    assert seen.get(PEER_HEADER) == expected_peer  # one value, never a list with the forged copy
    assert SUBJECT_HEADER not in seen  # no verified token: no subject


def test_repeated_and_mixed_case_forged_headers_are_all_removed(mg, certs, upstream):
    forged = [
        ("X-Peer-SPIFFE-ID", ROOT), ("x-peer-spiffe-id", ROOT), ("x-peer-spiffe-id", "spiffe://x/y"),
        ("X-Token-Subject", "admin"), ("x-token-subject", "root"),
    ]
    request_id = rid("fwd-many")
    resp = mg.request("GET", "/open/many", headers=[("x-request-id", request_id), *forged],
                      ssl_context=certs.context("frontend"))
    assert resp.status == 200
    seen = seen_upstream(upstream, request_id)["headers"]
    assert seen[PEER_HEADER] == FRONTEND
    assert SUBJECT_HEADER not in seen


def test_forged_headers_are_removed_from_unmatched_requests_let_through(mg, certs, upstream):
    resp, request_id = call(mg, certs, "/anything", listener="lenient", headers=FORGED, label="fwd-unmatched")
    assert resp.status == 200
    seen = seen_upstream(upstream, request_id)["headers"]
    assert PEER_HEADER not in seen and SUBJECT_HEADER not in seen


def test_waypoint_identity_is_forwarded_and_forgeries_dropped(mg, certs, upstream):
    resp, request_id = call(mg, certs, "/ambient/fwd", listener="ambient",
                            headers={SIM_PRINCIPAL_HEADER: FRONTEND, **FORGED}, label="fwd-ambient")
    assert resp.status == 200
    seen = seen_upstream(upstream, request_id)["headers"]
    assert seen[PEER_HEADER] == FRONTEND and SUBJECT_HEADER not in seen


# --------------------------------------------------------------------------------------------------
# Audit lines and counters


def test_denial_audit_line_names_the_peer_and_the_rule(mg, certs):
    resp, request_id = call(mg, certs, "/deny-first/audit", client="legacy", label="audit-deny")
    assert resp.status == 403
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["route"], rec["decision"], rec["reason"], rec["status"]) == ("deny-first", "deny", "peer_not_allowed", 403)
    assert rec["peer"] == LEGACY
    assert "deny[0]" in rec["detail"]
    assert rec["path"] == "/deny-first/"


def test_allow_audit_line_carries_the_peer(mg, certs):
    resp, request_id = call(mg, certs, "/shop/audit", client="frontend", label="audit-allow")
    assert resp.status == 200
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["route"], rec["decision"], rec["peer"]) == ("shop", "allow", FRONTEND)


def test_audit_line_without_identity_has_no_peer_and_says_why(mg, certs):
    resp, request_id = call(mg, certs, "/exact/audit", client="not-spiffe", label="audit-noid")
    assert resp.status == 403
    rec = mg.wait_audit(request_id=request_id)
    assert rec["reason"] == "peer_identity_missing"
    assert "peer" not in rec
    assert "SPIFFE" in rec["detail"]
    resp, request_id = call(mg, certs, "/exact/audit", listener="plain", label="audit-plain")
    rec = mg.wait_audit(request_id=request_id)
    assert rec["reason"] == "peer_not_mtls" and "peer" not in rec


def test_report_mode_peer_denial_is_audited_and_passes(mg, certs, upstream):
    resp, request_id = call(mg, certs, "/shadow/x", client="legacy", label="report")
    assert resp.status == 200
    assert reached_upstream(upstream, request_id)
    rec = mg.wait_audit(request_id=request_id)
    assert (rec["decision"], rec["reason"], rec["peer"], rec["status"]) == ("report", "peer_not_allowed", LEGACY, 0)


@pytest.mark.parametrize(
    "prefix,client,listener,counters",
    [
        ("/exact/", "legacy", "main", ["meshguard.route.exact.deny", "meshguard.reason.peer_not_allowed.deny"]),
        ("/exact/", "no-uri-san", "main", ["meshguard.route.exact.deny", "meshguard.reason.peer_identity_missing.deny"]),
        ("/mtls-only/", None, "plain", ["meshguard.route.mtls-only.deny", "meshguard.reason.peer_not_mtls.deny"]),
        ("/shop/", "frontend", "main", ["meshguard.route.shop.allow"]),
        ("/shadow/", "foreign", "main", ["meshguard.route.shadow.report", "meshguard.reason.peer_not_allowed.report"]),
    ],
)
def test_each_peer_decision_counts_once_by_route_and_reason(mg, certs, prefix, client, listener, counters):
    before = {n: counter(mg, n) for n in counters}
    call(mg, certs, prefix + "count", client=client, listener=listener, label="count")
    assert {n: counter(mg, n) - before[n] for n in counters} == {n: 1 for n in counters}


# --------------------------------------------------------------------------------------------------
# What Envoy's property ABI really returns (a probe module, not meshguard)


@pytest.fixture(scope="module")
def probe(module_envoys, certs) -> harness.Envoy:
    """An Envoy running the property probe behind TLS with an optional client certificate; the
    Istio filter state is set the way a waypoint does it, from all of the peer's URI SANs."""
    wasm = harness.build_property_probe()
    paths = "\n".join(PROBED.values())
    server = certs.server
    return module_envoys(
        with_wasm=False,
        tls=DownstreamTls(server.cert, server.key, certs.pki.ca, require_client_certificate=False),
        extra_http_filters=[
            harness.set_filter_state_filter("io.istio.peer_principal", "%DOWNSTREAM_PEER_URI_SAN%"),
            harness.wasm_filter(paths, wasm=wasm, vm_id="probe", root_id=""),
        ],
    )


def probed(envoy: harness.Envoy, certs: Certs, client: str | None) -> dict[str, bytes | None]:
    """{property name: raw bytes (None when absent)} as the probe saw them for one request."""
    resp = envoy.request("GET", "/probe", ssl_context=certs.context(client))
    assert resp.status == 200, resp.body[:300]
    headers = resp.echo()["headers"]
    out: dict[str, bytes | None] = {}
    for i, name in enumerate(PROBED):
        value = headers[f"x-probe-{i}"]
        assert not value.startswith("error:"), (name, value)
        out[name] = None if value == "absent" else bytes.fromhex(value)
    return out


def test_probe_cert_digest_is_lowercase_hex_text_of_der_sha256(probe, certs):
    """`connection.sha256_peer_certificate_digest` is 64 ASCII hex digits (lowercase), the SHA-256
    of the DER certificate; not the 32 raw bytes. `CertDigest::from_property` decodes this."""
    for client in ("frontend", "no-uri-san"):
        digest = probed(probe, certs, client)["digest"]
        assert digest == certs.clients[client].der_sha256().hex().encode("ascii")
    assert probed(probe, certs, None)["digest"] is None


def test_probe_mtls_and_uri_san_encodings(probe, certs):
    seen = probed(probe, certs, "frontend")
    assert seen["mtls"] == b"\x01"
    assert seen["uri_san"] == FRONTEND.encode()  # raw UTF-8, no quoting
    no_san = probed(probe, certs, "no-uri-san")
    assert (no_san["mtls"], no_san["uri_san"]) == (b"\x01", None)  # mTLS alone proves no identity
    none = probed(probe, certs, None)
    assert (none["mtls"], none["uri_san"]) == (b"\x00", None)


def test_probe_two_uri_sans_first_in_property_all_in_filter_state(probe, certs):
    seen = probed(probe, certs, "frontend+legacy")
    assert seen["uri_san"] == FRONTEND.encode()
    assert seen["state"] == f"{FRONTEND},{LEGACY}".encode()


def test_probe_istio_filter_state_is_read_through_the_filter_state_map(probe, certs):
    """Another filter's `envoy.string` under `io.istio.peer_principal` is readable at
    `["filter_state", "io.istio.peer_principal"]` (raw string); the bare path
    `["io.istio.peer_principal"]` looks for a wasm CelState and finds nothing."""
    seen = probed(probe, certs, "frontend")
    assert seen["state"] == FRONTEND.encode()
    assert seen["bare_state"] is None
    assert probed(probe, certs, None)["state"] is None  # empty value: not set at all


# --------------------------------------------------------------------------------------------------
# Owner (BOLA) and token binding: need verified claims (JWT)


PEERS_JWT = {
    "mode": "enforce",
    "unmatched": "deny",
    "forward_identity": FORWARD,
    "jwt_providers": JWT_PROVIDERS,
    "routes": [
        {"name": "user", "match": {"methods": ["GET"], "path": "/users/{id}"},
         "jwt": {"providers": ["mesh"]},
         "owner": {"param": "id", "claim": "sub", "bypass": {"claim": "roles", "values": ["admin"]}}},
        {"name": "tenant-docs", "match": {"methods": ["GET"], "path": "/tenants/{tenant}/docs"},
         "jwt": {"providers": ["mesh"]}, "owner": {"param": "tenant", "claim": "tenants"}},
        {"name": "report", "match": {"methods": ["GET"], "path": "/reports"},
         "jwt": {"providers": ["mesh"]}, "owner": {"query": "user", "claim": "sub"}},
        {"name": "doc-create", "match": {"methods": ["POST"], "path": "/docs"},
         "jwt": {"providers": ["mesh"]}, "owner": {"body_field": "owner", "claim": "sub"}},
        {"name": "bound-azp", "match": {"prefix": "/bound/azp"}, "peers": {"allow": [TD]},
         "jwt": {"providers": ["mesh"]}, "binding": {"claim": "azp", "map": {"web-app": FRONTEND}}},
        {"name": "bound-cnf", "match": {"prefix": "/bound/cnf"}, "peers": {"require_mtls": True},
         "jwt": {"providers": ["mesh"]}, "binding": {"cnf": True}},
        {"name": "ordered", "match": {"prefix": "/ordered/"}, "peers": {"allow": [FRONTEND]},
         "jwt": {"providers": ["mesh"]},
         "owner": {"query": "user", "claim": "sub"}},
        {"name": "whoami", "match": {"prefix": "/whoami"}, "jwt": {"providers": ["mesh"], "allow_missing": True}},
    ],
}


@pytest.fixture(scope="module")
def mg_jwt(module_envoys, meshguard_wasm, certs) -> harness.Envoy:
    server = certs.server
    return module_envoys(
        plugin_config=PEERS_JWT,
        wasm=meshguard_wasm,
        tls=DownstreamTls(server.cert, server.key, certs.pki.ca, require_client_certificate=True),
    )


@pytest.mark.parametrize(
    "path,claims,reason",
    [
        ("/users/alice", {"sub": "alice"}, None),  # own object
        ("/users/bob", {"sub": "alice"}, "owner_mismatch"),  # someone else's
        ("/users/bob", {"sub": "root", "roles": ["admin"]}, None),  # bypass
        ("/users/bob", {"sub": "eve", "roles": ["user", "auditor"]}, "owner_mismatch"),
        ("/tenants/t2/docs", {"sub": "alice", "tenants": ["t1", "t2"]}, None),  # array claim
        ("/tenants/t3/docs", {"sub": "alice", "tenants": ["t1", "t2"]}, "owner_mismatch"),
        ("/reports?user=alice", {"sub": "alice"}, None),
        ("/reports?user=bob", {"sub": "alice"}, "owner_mismatch"),
        ("/reports?user=alice&user=bob", {"sub": "alice"}, "owner_mismatch"),  # repeated: ambiguous
        ("/reports", {"sub": "alice"}, "owner_mismatch"),  # no owner named
    ],
)
def test_owner_rules(mg_jwt, certs, upstream, path, claims, reason):
    resp, request_id = call(mg_jwt, certs, path, client="frontend", headers=bearer(token(**claims)), label="owner")
    if reason is None:
        assert resp.status == 200, resp.body[:300]
    else:
        assert_problem(resp, 403, reason, request_id)
        assert not reached_upstream(upstream, request_id)


@pytest.mark.parametrize("owner,reason", [("alice", None), ("bob", "owner_mismatch"), (7, "owner_mismatch")])
def test_owner_from_body_field(mg_jwt, certs, upstream, owner, reason):
    body = json.dumps({"owner": owner, "title": "x"}).encode()
    resp, request_id = call(mg_jwt, certs, "/docs", method="POST", client="frontend", body=body,
                            headers={"content-type": "application/json", **bearer(token(sub="alice"))},
                            label="owner-body")
    if reason is None:
        assert resp.status == 200, resp.body[:300]
        assert resp.echo()["body"] == body
    else:
        assert_problem(resp, 403, reason, request_id)
        assert not reached_upstream(upstream, request_id)


def test_owner_denial_audit_line_names_peer_and_subject(mg_jwt, certs):
    resp, request_id = call(mg_jwt, certs, "/users/bob", client="frontend", headers=bearer(token(sub="alice")),
                            label="owner-audit")
    assert resp.status == 403
    rec = mg_jwt.wait_audit(request_id=request_id)
    assert (rec["reason"], rec["route"], rec["path"]) == ("owner_mismatch", "user", "/users/{id}")
    assert (rec.get("sub"), rec.get("iss")) == ("alice", ISSUER)
    assert "bob" not in json.dumps(rec)  # the path value never appears, only the template


@pytest.mark.parametrize(
    "client,claims,reason",
    [
        ("frontend", {"sub": "u1", "azp": "web-app"}, None),  # mapped to frontend
        ("legacy", {"sub": "u1", "azp": "web-app"}, "token_not_bound_to_peer"),  # right token, wrong workload
        ("frontend", {"sub": "u1", "azp": FRONTEND}, None),  # names the workload directly
        ("legacy", {"sub": "u1", "azp": FRONTEND}, "token_not_bound_to_peer"),
        ("frontend", {"sub": "u1", "azp": "other-app"}, "token_not_bound_to_peer"),
        ("frontend", {"sub": "u1"}, "token_not_bound_to_peer"),  # no azp
    ],
)
def test_token_bound_to_workload_by_claim(mg_jwt, certs, upstream, client, claims, reason):
    resp, request_id = call(mg_jwt, certs, "/bound/azp", client=client, headers=bearer(token(**claims)), label="azp")
    if reason is None:
        assert resp.status == 200, resp.body[:300]
    else:
        assert_problem(resp, 401, reason, request_id)
        assert 'error="invalid_token"' in (resp.header("www-authenticate") or "")
        assert not reached_upstream(upstream, request_id)


def test_certificate_bound_token_cnf_x5t_s256(mg_jwt, certs, upstream):
    frontend = certs.clients["frontend"]
    bound = token(sub="u1", cnf={"x5t#S256": x5t_s256(frontend)})
    resp, _ = call(mg_jwt, certs, "/bound/cnf", client="frontend", headers=bearer(bound), label="cnf-ok")
    assert resp.status == 200, resp.body[:300]
    # The same token from another certificate (even of an allowed workload) is refused.
    resp, request_id = call(mg_jwt, certs, "/bound/cnf", client="legacy", headers=bearer(bound), label="cnf-other")
    assert_problem(resp, 401, "token_not_bound_to_peer", request_id)
    assert not reached_upstream(upstream, request_id)
    # A token without cnf, or with a thumbprint of something else, is refused too.
    for claims in ({"sub": "u1"}, {"sub": "u1", "cnf": {"x5t#S256": x5t_s256(certs.server)}},
                   {"sub": "u1", "cnf": {"x5t#S256": frontend.der_sha256().hex()}}):
        resp, request_id = call(mg_jwt, certs, "/bound/cnf", client="frontend", headers=bearer(token(**claims)),
                                label="cnf-bad")
        assert_problem(resp, 401, "token_not_bound_to_peer", request_id)


def test_peers_run_before_jwt_and_jwt_before_owner(mg_jwt, certs):
    """Cheap checks first: a wrong peer is refused before its token is looked at, and a missing
    token is reported as such before the owner rule."""
    resp, request_id = call(mg_jwt, certs, "/ordered/x?user=bob", client="legacy", label="order-peer")
    assert_problem(resp, 403, "peer_not_allowed", request_id)
    resp, request_id = call(mg_jwt, certs, "/ordered/x?user=bob", client="frontend", label="order-jwt")
    assert_problem(resp, 401, "jwt_missing", request_id)
    resp, request_id = call(mg_jwt, certs, "/ordered/x?user=bob", client="frontend",
                            headers=bearer(token(sub="alice")), label="order-owner")
    assert_problem(resp, 403, "owner_mismatch", request_id)


def test_verified_subject_and_peer_are_forwarded_forgeries_dropped(mg_jwt, certs, upstream):
    resp, request_id = call(mg_jwt, certs, "/whoami", client="frontend",
                            headers={**FORGED, **bearer(token(sub="alice"))}, label="whoami")
    assert resp.status == 200
    seen = seen_upstream(upstream, request_id)["headers"]
    assert (seen[PEER_HEADER], seen[SUBJECT_HEADER]) == (FRONTEND, "alice")
    assert "authorization" not in seen  # the token itself is not forwarded by default
    resp, request_id = call(mg_jwt, certs, "/whoami", client="frontend", headers=FORGED, label="whoami-anon")
    assert resp.status == 200
    seen = seen_upstream(upstream, request_id)["headers"]
    assert seen[PEER_HEADER] == FRONTEND and SUBJECT_HEADER not in seen
