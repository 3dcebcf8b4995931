"""The Envoy configs we ship (envoy/*.yaml) are valid: Envoy's own `--mode validate` accepts them,
without the module (checks everything else in the file) and with it (runs meshguard's configure
callback on the embedded plugin config). The demo also answers the curl lines it prints as it says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

import harness
from pki import Pki

ENVOY_DIR = harness.REPO_ROOT / "envoy"
WASM_FILTER = "envoy.filters.http.wasm"


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def wasm_filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in walk(config) if n.get("name") == WASM_FILTER]


def without_wasm(config: dict[str, Any]) -> dict[str, Any]:
    for node in walk(config):
        if isinstance(node.get("http_filters"), list):
            node["http_filters"] = [f for f in node["http_filters"] if f.get("name") != WASM_FILTER]
    return config


def plugin_config(filter_entry: dict[str, Any]) -> Any:
    return json.loads(filter_entry["typed_config"]["config"]["configuration"]["value"])


def load_demo(wasm: Path) -> dict[str, Any]:
    return yaml.safe_load((ENVOY_DIR / "demo.yaml").read_text().replace("@MESHGUARD_WASM@", str(wasm)))


def load_sidecar(tmp_path: Path, wasm: Path) -> dict[str, Any]:
    """sidecar.yaml with its CHANGE ME file paths pointed at a generated PKI and the module."""
    pki = Pki(tmp_path)
    server = pki.issue("workload", uris=("spiffe://cluster.local/ns/shop/sa/users",), server=True)
    text = (ENVOY_DIR / "sidecar.yaml").read_text()
    for old, new in (
        ("/etc/meshguard/certs/cert-chain.pem", server.cert),
        ("/etc/meshguard/certs/key.pem", server.key),
        ("/etc/meshguard/certs/root-cert.pem", pki.ca),
        ("/etc/meshguard/meshguard.wasm", str(wasm)),
    ):
        assert old in text, f"sidecar.yaml no longer mentions {old}"
        text = text.replace(old, new)
    return yaml.safe_load(text)


def assert_valid(config: dict[str, Any]) -> None:
    code, out = harness.validate_bootstrap(config)
    assert code == 0, out[-3000:]


@pytest.mark.parametrize("name", ["demo.yaml", "sidecar.yaml"])
def test_shipped_config_has_one_fail_closed_meshguard_filter_first(name):
    config = yaml.safe_load((ENVOY_DIR / name).read_text())
    (entry,) = wasm_filters(config)
    cfg = entry["typed_config"]["config"]
    assert cfg["root_id"] == "meshguard" and cfg["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    assert cfg["fail_open"] is False
    chains = [n["http_filters"] for n in walk(config) if "http_filters" in n]
    assert all(chain[0]["name"] == WASM_FILTER and chain[-1]["name"] == "envoy.filters.http.router" for chain in chains)
    assert isinstance(plugin_config(entry), dict)


@pytest.mark.parametrize("name", ["demo.yaml", "sidecar.yaml"])
def test_shipped_config_refuses_header_names_with_underscores(name):
    """docs/hardening.md: every connection manager we ship refuses `x_user` before meshguard runs
    (WSGI, Rack and PHP would read it as `x-user`)."""
    config = yaml.safe_load((ENVOY_DIR / name).read_text())
    managers = [n for n in walk(config) if "http_filters" in n]
    assert managers
    for hcm in managers:
        options = hcm.get("common_http_protocol_options", {})
        assert options.get("headers_with_underscores_action") == "REJECT_REQUEST", name


def demo_plugin_config() -> dict[str, Any]:
    (entry,) = wasm_filters(yaml.safe_load((ENVOY_DIR / "demo.yaml").read_text()))
    return plugin_config(entry)


def test_demo_plugin_config_extends_the_documented_one():
    """The demo keeps the routes of the Istio example (harness.DEMO_PLUGIN_CONFIG) in front and
    adds the /api/orders routes that tools/demo.py's curl lines use."""
    config = demo_plugin_config()
    base = harness.DEMO_PLUGIN_CONFIG
    assert {k: config[k] for k in ("mode", "unmatched")} == {k: base[k] for k in ("mode", "unmatched")}
    assert config["routes"][: len(base["routes"])] == base["routes"]
    names = [r["name"] for r in config["routes"][len(base["routes"]):]]
    assert names == ["get-order", "create-order"]


def test_demo_jwks_is_the_public_half_of_the_demo_only_key():
    """Tokens tools/demo.py mints verify against envoy/demo.yaml; the private key says what it is."""
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization

    sys.path.insert(0, str(harness.REPO_ROOT / "tools"))
    import demo

    text = demo.DEMO_KEY.read_text()
    assert text.startswith("DEMO ONLY - NOT A SECRET.")
    key = serialization.load_pem_private_key(text.encode(), password=None)
    provider = demo_plugin_config()["jwt_providers"]["demo"]
    (jwk,) = json.loads(provider["local_jwks"]["inline_string"])["keys"]
    public = pyjwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert (jwk["kid"], jwk["crv"], jwk["x"]) == (demo.DEMO_KID, public["crv"], public["x"])
    assert (provider["issuer"], provider["audiences"]) == (demo.DEMO_ISSUER, [demo.DEMO_AUDIENCE])
    claims = pyjwt.decode(demo.mint_token("orders:read"), key.public_key(), algorithms=["EdDSA"],
                          audience=demo.DEMO_AUDIENCE, issuer=demo.DEMO_ISSUER)
    assert claims["scope"] == "orders:read" and claims["sub"] == "alice"


def test_demo_yaml_is_valid_envoy_config_apart_from_the_module():
    assert_valid(without_wasm(load_demo(Path("/nonexistent.wasm"))))


def test_sidecar_yaml_is_valid_envoy_config_apart_from_the_module(tmp_path):
    assert_valid(without_wasm(load_sidecar(tmp_path, Path("/nonexistent.wasm"))))


def test_demo_yaml_validates_with_the_module(meshguard_wasm):
    assert_valid(load_demo(meshguard_wasm))


def test_sidecar_yaml_validates_with_the_module(tmp_path, meshguard_wasm):
    assert_valid(load_sidecar(tmp_path, meshguard_wasm))


@pytest.mark.parametrize("name", ["demo.yaml", "sidecar.yaml"])
def test_shipped_plugin_configs_pass_offline_validator(name, offline_validator):
    (entry,) = wasm_filters(yaml.safe_load((ENVOY_DIR / name).read_text()))
    code, out = offline_validator(plugin_config(entry))
    assert code == 0 and len(out.splitlines()) == 1 and "ok" in out, out


@pytest.mark.parametrize("client", ["curl", "harness client"])
def test_demo_answers_its_printed_curl_lines(meshguard_wasm, client):
    """`tools/demo.py --check` on free ports: starts everything, runs every curl line the demo
    prints (with the tokens it mints) and checks each status and problem reason, then stops.
    Without curl on PATH the same requests go through the harness client."""
    if client == "curl" and not shutil.which("curl"):
        pytest.skip("curl is not installed")
    env = dict(os.environ)
    if client != "curl":
        env["PATH"] = "/nonexistent"
    proc = subprocess.run(
        [sys.executable, str(harness.REPO_ROOT / "tools" / "demo.py"), "--check",
         "--listen-port", "0", "--admin-port", "0", "--upstream-port", "0"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"demo check ({client}):" in proc.stdout and " 0 failed" in proc.stdout, proc.stdout
