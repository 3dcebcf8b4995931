"""Delivery, proved offline: `make oci` writes an image Istio's wasm fetcher accepts, the documented
skopeo push keeps its digest, the documented manifest edit pins it, the config schema accepts every
shipped config, and the `meshguard` command answers for the demo config.

Istio's acceptance rules (istio/istio pkg/wasm: imagefetcher.go, cache.go), applied here by
`istio_extract`:
- the manifest and every blob are fetched by digest, and each must hash to its digest;
- a Docker schema-2 manifest: the last layer must be `application/vnd.docker.image.rootfs.diff.tar.gzip`;
- otherwise the *compat* variant is tried first: the last layer must be
  `application/vnd.oci.image.layer.v1.tar+gzip`, a gzip tar with an entry whose base name is
  `plugin.wasm`; then the *oci* variant: exactly 2 layers, one of media type
  `application/vnd.module.wasm.content.layer.v1+wasm`, whose blob is the raw module;
- the module must start with the wasm magic and be at least 8 bytes;
- `sha256` for an `oci://` URL is compared with the manifest digest (hex, no `sha256:`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import yaml

import harness

REPO = harness.REPO_ROOT
OCI_DIR = REPO / "dist" / "oci"
DIGEST_FILE = REPO / "dist" / "oci-manifest.sha256"
SCHEMA_FILE = REPO / "schema" / "meshguard-config.schema.json"
VERSION = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"


class Rejected(Exception):
    """Istio's fetcher would refuse this image."""


# --------------------------------------------------------------------------------------------------
# Istio's rules


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked_blob(get: Callable[[str], bytes], desc: dict[str, Any]) -> bytes:
    data = get(desc["digest"])
    if "sha256:" + sha256_hex(data) != desc["digest"]:
        raise Rejected(f"blob {desc['digest']} does not hash to its digest")
    if len(data) != desc["size"]:
        raise Rejected(f"blob {desc['digest']} is {len(data)} bytes, descriptor says {desc['size']}")
    return data


def plugin_wasm_in_targz(blob: bytes) -> bytes:
    try:
        tar_bytes = gzip.decompress(blob)
    except OSError as e:
        raise Rejected(f"layer is not gzip: {e}") from None
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                f = tar.extractfile(member)
                if f is None:
                    raise Rejected("plugin.wasm is not a regular file")
                return f.read()
    raise Rejected("plugin.wasm not found in the layer")


def istio_extract(manifest_bytes: bytes, get_blob: Callable[[str], bytes]) -> bytes:
    """The module Istio would load from this image, or Rejected."""
    manifest = json.loads(manifest_bytes)
    layers = manifest.get("layers") or []
    if not layers:
        raise Rejected("number of layers must be greater than zero")
    if manifest.get("mediaType") == DOCKER_MANIFEST:
        if layers[-1]["mediaType"] != DOCKER_LAYER:
            raise Rejected(f"docker image: last layer is {layers[-1]['mediaType']}")
        module = plugin_wasm_in_targz(checked_blob(get_blob, layers[-1]))
    else:
        errors = []
        module = None
        if layers[-1]["mediaType"] == OCI_LAYER:
            try:
                module = plugin_wasm_in_targz(checked_blob(get_blob, layers[-1]))
            except Rejected as e:
                errors.append(f"compat: {e}")
        else:
            errors.append(f"compat: last layer is {layers[-1]['mediaType']}, not {OCI_LAYER}")
        if module is None:
            wasm_layers = [layer for layer in layers if layer["mediaType"] == WASM_LAYER]
            if len(layers) != 2:
                errors.append(f"oci: number of layers must be 2 but got {len(layers)}")
            elif not wasm_layers:
                errors.append(f"oci: no layer of type {WASM_LAYER}")
            else:
                module = checked_blob(get_blob, wasm_layers[0])
        if module is None:
            raise Rejected("; ".join(errors))
    if len(module) < 8 or module[:4] != b"\0asm":
        raise Rejected("fetched module is not a wasm binary")
    return module


def read_layout(layout: Path, tag: str) -> tuple[bytes, Callable[[str], bytes]]:
    """The manifest bytes tagged `tag` in an OCI image layout, and a blob getter."""
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (desc,) = [m for m in index["manifests"]
               if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert desc["mediaType"] == OCI_MANIFEST

    def get(digest: str) -> bytes:
        algo, hex_ = digest.split(":", 1)
        return (layout / "blobs" / algo / hex_).read_bytes()

    return checked_blob(get, desc), get


# --------------------------------------------------------------------------------------------------
# The layout `make oci` wrote


@pytest.fixture(scope="module")
def layout() -> Path:
    if not (OCI_DIR / "index.json").is_file():
        pytest.fail(f"{OCI_DIR} is missing: run `make oci` (make e2e does)")
    return OCI_DIR


def test_make_oci_layout_passes_istio_rules_and_holds_the_built_module(layout, meshguard_wasm):
    manifest, get = read_layout(layout, VERSION)
    module = istio_extract(manifest, get)
    assert module == Path(meshguard_wasm).read_bytes(), "dist/oci holds another module: run `make oci`"
    digest = sha256_hex(manifest)
    assert DIGEST_FILE.read_text().strip() == digest
    assert re.fullmatch(r"[a-f0-9]{64}", digest)  # the CRDs' pattern for spec.sha256
    print(f"\noci://<registry>/meshguard/meshguard:{VERSION}  spec.sha256: {digest}")


def test_make_oci_image_is_the_compat_variant(layout):
    manifest_bytes, get = read_layout(layout, VERSION)
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_LAYER]
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    config = json.loads(checked_blob(get, manifest["config"]))
    # The config's diff_id is the digest of the uncompressed layer, as registries and skopeo expect.
    layer_tar = gzip.decompress(get(manifest["layers"][0]["digest"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(layer_tar)]}


def test_oci_layout_is_reproducible(tmp_path, meshguard_wasm):
    """The same module and tag give the same manifest digest: a rebuild can be checked against a pin."""
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        subprocess.run([sys.executable, str(REPO / "tools" / "oci.py"), str(meshguard_wasm), str(out),
                        "--tag", VERSION, "--revision", "0123456789ab"], check=True, capture_output=True)
        manifest, get = read_layout(out, VERSION)
        assert istio_extract(manifest, get) == Path(meshguard_wasm).read_bytes()
        digests.append(sha256_hex(manifest))
    assert digests[0] == digests[1]


def test_oci_script_refuses_a_file_that_is_not_wasm(tmp_path):
    bad = tmp_path / "x.wasm"
    bad.write_bytes(b"MZ not wasm")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "oci.py"), str(bad), str(tmp_path / "o"),
                           "--tag", "t"], capture_output=True, text=True)
    assert proc.returncode == 1 and "not a wasm module" in proc.stderr
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------
# The rules refuse what Istio refuses (so that passing them means something)


def image(layers: list[tuple[str, bytes]], manifest_type: str = OCI_MANIFEST) -> tuple[bytes, Callable[[str], bytes]]:
    blobs = {}
    descs = []
    for media_type, data in layers:
        d = "sha256:" + sha256_hex(data)
        blobs[d] = data
        descs.append({"mediaType": media_type, "digest": d, "size": len(data)})
    config = b"{}"
    blobs["sha256:" + sha256_hex(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + sha256_hex(config), "size": 2},
                           "layers": descs}).encode()
    return manifest, blobs.__getitem__


def targz(name: str, data: bytes, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


MODULE = b"\0asm\x01\0\0\0" + b"\0" * 8


def test_rules_accept_both_variants_istio_documents():
    assert istio_extract(*image([(OCI_LAYER, targz("plugin.wasm", MODULE))])) == MODULE
    assert istio_extract(*image([(OCI_LAYER, targz("x", b"base")), (OCI_LAYER, targz("./plugin.wasm", MODULE))])) == MODULE
    assert istio_extract(*image([("application/vnd.module.wasm.config.v1+json", b"{}"), (WASM_LAYER, MODULE)])) == MODULE
    assert istio_extract(*image([(DOCKER_LAYER, targz("plugin.wasm", MODULE))], DOCKER_MANIFEST)) == MODULE


@pytest.mark.parametrize("layers,why", [
    ([(WASM_LAYER, MODULE)], "single-layer `oras push` artifact"),
    ([(OCI_LAYER.removesuffix("+gzip"), targz("plugin.wasm", MODULE, compress=False))], "uncompressed layer (buildah commit)"),
    ([(OCI_LAYER, targz("extension.wasm", MODULE))], "no plugin.wasm in the layer"),
    ([(OCI_LAYER, targz("plugin.wasm", MODULE)), (OCI_LAYER, targz("etc", b"x"))], "plugin.wasm not in the last layer"),
    ([(OCI_LAYER, targz("plugin.wasm", b"not wasm at all"))], "not a wasm binary"),
    ([(WASM_LAYER, MODULE), (WASM_LAYER, MODULE), (OCI_LAYER, targz("a", b"b"))], "three layers"),
])
def test_rules_reject_what_istio_rejects(layers, why):
    with pytest.raises(Rejected):
        istio_extract(*image(layers))


def test_rules_reject_a_blob_that_does_not_match_its_digest():
    manifest, get = image([(OCI_LAYER, targz("plugin.wasm", MODULE))])
    tampered = targz("plugin.wasm", MODULE[:-1] + b"\1")
    with pytest.raises(Rejected, match="does not hash"):
        istio_extract(manifest, lambda d: tampered if d != "x" else get(d))


# --------------------------------------------------------------------------------------------------
# skopeo: the documented push, to a registry on loopback


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is not installed: run `make deps` (Debian packages skopeo, docker-registry)")
    return path


def test_skopeo_reads_the_layout_with_the_same_digest(layout):
    skopeo = need("skopeo")
    manifest, _ = read_layout(layout, VERSION)
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{layout}:{VERSION}"],
                         check=True, capture_output=True, timeout=60).stdout
    assert raw == manifest
    info = json.loads(subprocess.run([skopeo, "inspect", f"oci:{layout}:{VERSION}"],
                                     check=True, capture_output=True, timeout=60).stdout)
    assert info["Digest"] == "sha256:" + sha256_hex(manifest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """A Docker distribution registry (Debian's docker-registry) on 127.0.0.1, storage in tmp."""
    binary = need("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = open(tmp_path / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=harness.die_with_parent)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"registry did not start: {(tmp_path / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        harness.kill_group(proc)
        log.close()
    assert harness.free_port_is_closed(port)


def test_documented_skopeo_push_keeps_the_digest_and_the_pull_passes_istio_rules(layout, registry, meshguard_wasm):
    skopeo = need("skopeo")
    manifest, _ = read_layout(layout, VERSION)
    ref = f"{registry}/meshguard/meshguard:{VERSION}"
    # istio/README.md's push (the local registry is plain HTTP: --dest-tls-verify=false).
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:{VERSION}", f"docker://{ref}"],
                   check=True, capture_output=True, timeout=120)
    # istio/README.md's digest check after the push.
    pushed = subprocess.run([skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}"],
                            check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    assert pushed == "sha256:" + sha256_hex(manifest) == "sha256:" + DIGEST_FILE.read_text().strip()

    # Pull as Istio's fetcher does: the manifest by tag, then the blobs by digest.
    base = f"http://{registry}/v2/meshguard/meshguard"
    req = urllib.request.Request(f"{base}/manifests/{VERSION}",
                                 headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        pulled = r.read()
        assert r.headers["Docker-Content-Digest"] == pushed
    assert sha256_hex(pulled) == pushed.removeprefix("sha256:")

    def get(digest: str) -> bytes:
        with urllib.request.urlopen(f"{base}/blobs/{digest}", timeout=30) as r:
            return r.read()

    assert istio_extract(pulled, get) == Path(meshguard_wasm).read_bytes()


# --------------------------------------------------------------------------------------------------
# The documented manifest edit: pin the digest, still valid against the CRDs


def test_documented_sha256_pin_makes_valid_manifests(layout):
    """istio/README.md's sed (registry and digest) on both manifests gives manifests the CRDs accept,
    pinned to the image `make oci` wrote."""
    from test_istio_manifests import load_crds, resource_schema

    digest = DIGEST_FILE.read_text().strip()
    crds = load_crds()
    for name in ("wasmplugin.yaml", "trafficextension.yaml"):
        proc = subprocess.run(
            ["sed", "-e", "s|registry.example.com|registry.internal:5000|",
             "-e", f"s|# sha256: .*|sha256: {digest}|", str(REPO / "istio" / name)],
            check=True, capture_output=True, text=True, timeout=30,
        )
        doc = yaml.safe_load(proc.stdout)
        wasm = doc["spec"]["wasm"] if doc["kind"] == "TrafficExtension" else doc["spec"]
        assert wasm["sha256"] == digest, f"{name} has no `# sha256:` line to pin"
        assert wasm["url"] == f"oci://registry.internal:5000/meshguard/meshguard:{VERSION}"
        group, _, version = doc["apiVersion"].rpartition("/")
        jsonschema.validate(doc, resource_schema(crds[(group, version, doc["kind"])]))


# --------------------------------------------------------------------------------------------------
# The config schema and the `meshguard` command


def shipped_plugin_configs() -> list[tuple[str, Any]]:
    from test_envoy_configs import plugin_config, wasm_filters

    out = [("harness.DEMO_PLUGIN_CONFIG", harness.DEMO_PLUGIN_CONFIG)]
    for path in sorted((REPO / "envoy").glob("*.yaml")):
        for i, entry in enumerate(wasm_filters(yaml.safe_load(path.read_text()))):
            out.append((f"envoy/{path.name}#{i}", plugin_config(entry)))
    for path in sorted((REPO / "istio").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "WasmPlugin":
                out.append((f"istio/{path.name}", doc["spec"]["pluginConfig"]))
            if doc and doc.get("kind") == "TrafficExtension":
                out.append((f"istio/{path.name}", doc["spec"]["wasm"]["pluginConfig"]))
    return out


CONFIGS = shipped_plugin_configs()


def test_make_release_puts_the_module_its_sha256_the_oci_layout_and_the_schema_under_dist(meshguard_wasm):
    """`make release` (docs/deploying.md): every file it promises, each consistent with the others."""
    proc = subprocess.run(["make", "--no-print-directory", "-s", "release"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dist = REPO / "dist"
    module = Path(meshguard_wasm).read_bytes()
    assert (dist / "meshguard.wasm").read_bytes() == module
    digest, name = (dist / "meshguard.wasm.sha256").read_text().split()
    assert (digest, name) == (hashlib.sha256(module).hexdigest(), "meshguard.wasm")
    assert (dist / "meshguard-config.schema.json").read_bytes() == SCHEMA_FILE.read_bytes()
    manifest = (dist / "oci-manifest.sha256").read_text().split()[0]
    index = json.loads((OCI_DIR / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [f"sha256:{manifest.removeprefix('sha256:')}"]
    for listed in ("dist/meshguard.wasm", "dist/meshguard.wasm.sha256", "dist/oci", "dist/meshguard-config.schema.json"):
        assert listed in proc.stdout, proc.stdout


def test_every_shipped_config_location_is_covered():
    names = {n.split("#")[0] for n, _ in CONFIGS}
    assert {"envoy/demo.yaml", "envoy/sidecar.yaml", "istio/wasmplugin.yaml", "istio/trafficextension.yaml"} <= names


def test_meshguard_schema_prints_the_checked_in_schema(meshguard_cli):
    out = subprocess.run([meshguard_cli, "schema"], check=True, capture_output=True, timeout=60).stdout
    assert out == SCHEMA_FILE.read_bytes(), "schema/ is stale: run `make schema`"
    jsonschema.Draft7Validator.check_schema(json.loads(out))


@pytest.mark.parametrize("name,config", CONFIGS, ids=[n for n, _ in CONFIGS])
def test_schema_accepts_every_shipped_config(name, config):
    schema = json.loads(SCHEMA_FILE.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(config)]
    assert not errors, f"{name}: {errors}"


def test_schema_refuses_an_unknown_field_in_a_shipped_config():
    schema = json.loads(SCHEMA_FILE.read_text())
    config = json.loads(json.dumps(harness.DEMO_PLUGIN_CONFIG))
    config["routes"][0]["jwt_required"] = True
    assert not jsonschema.Draft7Validator(schema).is_valid(config)
    config = json.loads(json.dumps(harness.DEMO_PLUGIN_CONFIG))
    config["unmatched_policy"] = "deny"
    assert not jsonschema.Draft7Validator(schema).is_valid(config)


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory) -> Path:
    from test_envoy_configs import demo_plugin_config

    path = tmp_path_factory.mktemp("explain") / "demo.json"
    path.write_text(json.dumps(demo_plugin_config()))
    return path


def explain(cli: str, config: Path, *args: str) -> str:
    proc = subprocess.run([cli, "explain", str(config), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_explain_demo_get_order_lists_jwt_then_request_checks(meshguard_cli, demo_config):
    out = explain(meshguard_cli, demo_config, "GET", "/api/orders/42")
    assert "route: get-order (routes[4]: template /api/orders/{id}, methods GET)" in out
    assert "params: id=42" in out
    assert re.search(r"1\. jwt: .*\n.*\"scopes\":\[\"orders:read\"\]", out)
    assert re.search(r"2\. request: ", out)
    assert "verdict: refused by jwt: 401 jwt_missing" in out


def test_explain_demo_create_order_lists_the_body_checks_after_the_header_checks(meshguard_cli, demo_config):
    out = explain(meshguard_cli, demo_config, "POST", "/api/orders", "Authorization: Bearer abc.def.ghi",
                  "Content-Type: application/json", "Content-Length: 40")
    order = re.findall(r"^  (\d)\. ([a-z_ ()]+):", out, re.M)
    assert order == [("1", "jwt"), ("2", "rate_limits"), ("3", "request"), ("4", "request (body)")], out
    assert "a token for demo in header authorization" in out
    assert "the body is buffered (at most 4096 bytes)" in out
    assert "verdict: nothing in the given headers refuses it" in out
    # The wrong content type is refused by the header-phase request check.
    out = explain(meshguard_cli, demo_config, "POST", "/api/orders", "Authorization: Bearer abc.def.ghi",
                  "Content-Type: text/plain", "Content-Length: 40")
    assert "verdict: refused by request: 415 unsupported_media_type" in out


@pytest.mark.parametrize("method,path,expect", [
    ("GET", "/healthz", "checks: none: the request goes on"),
    ("GET", "/beta/x", "mode: report"),
    ("GET", "/nope", "unmatched: deny: 404 route_not_found"),
    ("DELETE", "/users/7", "unmatched: deny: 405 method_not_allowed, Allow: GET"),
    ("GET", "/users/%2e%2e/%2fetc", "400 path_invalid"),
    ("GET", "/public/../users/9", "route: get-user"),
])
def test_explain_demo_routes(meshguard_cli, demo_config, method, path, expect):
    assert expect in explain(meshguard_cli, demo_config, method, path)


def test_meshguard_command_usage_and_refusals(meshguard_cli, tmp_path):
    proc = subprocess.run([meshguard_cli], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "meshguard validate" in proc.stderr and "meshguard explain" in proc.stderr
    proc = subprocess.run([meshguard_cli, "frobnicate"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    proc = subprocess.run([meshguard_cli, "explain", "only-a-file"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage: meshguard explain CONFIG METHOD PATH" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"routes": [{"name": "x", "match": {"path": "/a"}, "jwt_required": True}]}))
    for args in (["validate", str(bad)], ["explain", str(bad), "GET", "/a"]):
        proc = subprocess.run([meshguard_cli, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "routes[0]" in proc.stdout, proc.stdout


def test_make_validate_still_works(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(harness.DEMO_PLUGIN_CONFIG))
    proc = subprocess.run(["make", "-s", "validate", f"CONFIG={good}"], cwd=REPO, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0 and "ok (4 routes)" in proc.stdout, proc.stdout + proc.stderr
