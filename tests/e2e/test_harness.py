"""Self-tests of the e2e harness with Envoy alone (no meshguard module needed): the echo upstream
reports exactly what reached it, Envoy starts on free ports, serves HTTP/1.1, HTTP/2 and mTLS, and
leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys

import httpx
import pytest

import harness
from harness import DownstreamTls, Envoy, raw_request
from pki import Pki


@pytest.fixture(scope="module")
def baseline(module_envoys) -> Envoy:
    return module_envoys(with_wasm=False)


def test_echo_upstream_reports_method_path_headers_and_exact_body(upstream):
    body = bytes(range(256)) * 3
    resp = raw_request(
        upstream.port,
        "PUT",
        "/a//b/../c?x=1&x=2",
        headers=[("X-Twice", "one"), ("x-twice", "two"), ("X-Once", "v")],
        body=body,
    )
    assert resp.status == 200
    rec = resp.echo()
    assert rec["method"] == "PUT"
    assert rec["path"] == "/a//b/../c?x=1&x=2"
    assert rec["headers"]["x-twice"] == ["one", "two"]
    assert rec["headers"]["x-once"] == "v"
    assert rec["body"] == body and rec["body_len"] == len(body)


def test_echo_upstream_decodes_chunked_bodies(upstream):
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=10) as s:
        s.sendall(
            b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    rec = harness.json.loads(payload)
    assert harness.base64.b64decode(rec["body_b64"]) == b"abcde"


def test_envoy_without_module_proxies_raw_path_and_body(baseline, upstream):
    body = b"\x00\xff binary \r\n"
    resp = baseline.request("POST", "/x/../y//z?q=%2F", headers={"x-request-id": "harness-1"}, body=body)
    assert resp.status == 200
    rec = resp.echo()
    # Envoy forwards the path untouched with default HCM settings: meshguard sees what clients send.
    assert rec["path"] == "/x/../y//z?q=%2F"
    assert rec["headers"]["x-request-id"] == "harness-1"
    assert rec["body"] == body


def test_envoy_ports_are_discovered_not_fixed(baseline):
    assert baseline.port > 0 and baseline.admin_port > 0
    assert baseline.port != baseline.admin_port
    status, body = baseline.admin("/ready")
    assert (status, body.strip()) == (200, "LIVE")


def test_stats_and_prometheus_are_readable(baseline):
    baseline.request("GET", "/count-me")
    stats = baseline.stats(r"^http\.ingress\.downstream_rq_total$")
    assert stats["http.ingress.downstream_rq_total"] >= 1
    assert "envoy_http_downstream_rq_total" in baseline.prometheus()


def test_http2_prior_knowledge_downstream(envoys):
    envoy = envoys(with_wasm=False, http2=True)
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        resp = client.get(envoy.url + "/h2/path", headers={"x-request-id": "h2-1"})
    assert resp.http_version == "HTTP/2"
    assert resp.status_code == 200
    assert resp.json()["path"] == "/h2/path"


def test_mtls_listener_requires_client_certificate(envoys, tmp_path):
    pki = Pki(tmp_path)
    server = pki.server()
    client = pki.issue("client", uris=("spiffe://example.org/ns/default/sa/client",))
    envoy = envoys(with_wasm=False, tls=DownstreamTls(server.cert, server.key, pki.ca), http2=True)

    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.load_cert_chain(client.cert, client.key)
    with httpx.Client(verify=ctx, http2=True, timeout=10) as c:
        resp = c.get(envoy.https_url + "/secure")
    assert resp.status_code == 200 and resp.json()["path"] == "/secure"
    assert resp.http_version == "HTTP/2"

    bare = ssl.create_default_context(cafile=pki.ca)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        with httpx.Client(verify=bare, timeout=10) as c:
            c.get(envoy.https_url + "/secure")


def test_stop_kills_the_whole_process_group(envoys):
    envoy = envoys(with_wasm=False)
    pgid = envoy.proc.pid
    port = envoy.port
    envoy.stop()
    assert envoy.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert harness.free_port_is_closed(port)
    envoy.stop()  # idempotent


def test_envoy_dies_with_the_test_runner(tmp_path, upstream):
    """Even a SIGKILLed runner leaves no Envoy behind (PDEATHSIG), and a SIGTERMed one runs atexit."""
    script = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "import harness\n"
        "e = harness.Envoy(with_wasm=False, upstream_port=%d, workdir=%r).start()\n"
        "print(e.proc.pid, flush=True)\n"
        "time.sleep(120)\n"
    ) % (os.path.dirname(harness.__file__), upstream.port, str(tmp_path))
    for sig in (signal.SIGKILL, signal.SIGTERM):
        runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            envoy_pid = int(runner.stdout.readline())
            runner.send_signal(sig)
            runner.wait(timeout=30)
            # Bounded wait for the kernel to deliver PDEATHSIG / for atexit to finish.
            for _ in range(200):
                try:
                    os.kill(envoy_pid, 0)
                except ProcessLookupError:
                    break
                # A zombie of a dead parent is reaped by init; treat "Z" as gone.
                try:
                    with open(f"/proc/{envoy_pid}/stat") as f:
                        if f.read().split(")")[-1].split()[0] == "Z":
                            break
                except FileNotFoundError:
                    break
                harness.time.sleep(0.05)
            else:
                os.kill(envoy_pid, signal.SIGKILL)
                pytest.fail(f"envoy {envoy_pid} outlived a runner killed by {sig!r}")
        finally:
            if runner.poll() is None:
                runner.kill()
            runner.stdout.close()


def test_failed_start_reports_log_and_leaves_nothing(tmp_path):
    bad = Envoy(config={"static_resources": {"listeners": [{"name": "x"}]}}, workdir=tmp_path)
    with pytest.raises(harness.EnvoyError) as err:
        bad.start()
    assert "exited" in str(err.value)
    assert not bad.running


def test_validate_mode_accepts_a_good_bootstrap_and_refuses_a_bad_one(upstream):
    good = harness.bootstrap(with_wasm=False, upstream_port=upstream.port)
    code, out = harness.validate_bootstrap(good)
    assert code == 0, out
    bad = harness.bootstrap(with_wasm=False, upstream_port=upstream.port)
    bad["static_resources"]["clusters"][0]["lb_policy"] = "NOT_A_POLICY"
    code, out = harness.validate_bootstrap(bad)
    assert code != 0
    assert "NOT_A_POLICY" in out


def test_audit_lines_are_parsed_from_envoy_log_lines():
    text = (
        "[2026-01-01 00:00:00.000][12][info][wasm] wasm log meshguard meshguard: "
        '{"kind":"meshguard.audit","request_id":"r1","decision":"deny","path":"/users/{id}"}\n'
        "[2026-01-01 00:00:00.001][12][info][wasm] wasm log meshguard meshguard: not json {\n"
        '[2026-01-01 00:00:00.002][12][info][main] {"kind":"other"}\n'
    )
    assert harness.parse_audit_lines(text) == [
        {"kind": "meshguard.audit", "request_id": "r1", "decision": "deny", "path": "/users/{id}"}
    ]


def test_wasm_export_reader_needs_the_proxy_wasm_abi(tmp_path):
    # A minimal module exporting nothing, then one exporting the two names the check wants.
    empty = tmp_path / "empty.wasm"
    empty.write_bytes(b"\0asm\x01\0\0\0")
    assert not harness.is_proxy_wasm_module(empty)

    def export_section(names):
        body = bytes([len(names)])
        for n in names:
            body += bytes([len(n)]) + n.encode() + b"\x00\x00"
        return b"\x07" + bytes([len(body)]) + body

    # Exports refer to function 0 without a function section: the reader does not validate, it reads.
    mod = tmp_path / "abi.wasm"
    mod.write_bytes(b"\0asm\x01\0\0\0" + export_section(["proxy_abi_version_0_2_1", "proxy_on_context_create"]))
    assert harness.wasm_exports(mod) == {"proxy_abi_version_0_2_1", "proxy_on_context_create"}
    assert harness.is_proxy_wasm_module(mod)


def test_concurrency_and_extra_clusters_reach_envoy(envoys, upstream):
    jwks = harness.static_cluster("jwks", upstream.port)
    envoy = envoys(with_wasm=False, concurrency=2, extra_clusters=[jwks])
    info = envoy.admin_json("/server_info")
    assert int(info["command_line_options"]["concurrency"]) == 2
    clusters = {c["name"] for c in envoy.admin_json("/clusters?format=json")["cluster_statuses"]}
    assert {"echo", "jwks"} <= clusters


def test_stub_server_answers_from_its_table_through_an_extra_cluster(envoys):
    with harness.StubServer() as stub:
        stub.set("/.well-known/jwks.json", {"keys": []})
        # Route everything to the stub's cluster to prove Envoy reaches it; modules use dispatch calls.
        config = harness.bootstrap(with_wasm=False, upstream_port=stub.port)
        envoy = envoys(config=config)
        resp = envoy.request("GET", "/.well-known/jwks.json?x=1")
        assert (resp.status, resp.json()) == (200, {"keys": []})
        assert envoy.request("GET", "/other").status == 404
        stub.set("/.well-known/jwks.json", "down", status=503)
        assert envoy.request("GET", "/.well-known/jwks.json").status == 503
        assert stub.hits("/.well-known/jwks.json") == 2
