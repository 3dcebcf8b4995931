"""Every manifest under istio/ is valid against the Istio CRD schemas in tests/data/istio-crds
(offline, as kubectl's server-side validation would judge it: unknown fields are errors), and the
meshguard plugin config inside a WasmPlugin or TrafficExtension passes the offline validator. The
WasmPlugin and the TrafficExtension install the same module with the same config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

import harness

ISTIO_DIR = harness.REPO_ROOT / "istio"


def crd_dir() -> Path:
    path = harness.reference_dir() / "istio-crds"
    if not path.is_dir():
        pytest.fail(f"{path} is missing (vendored reference data)")
    return path


def load_crds() -> dict[tuple[str, str, str], dict[str, Any]]:
    """{(group, version, kind): openAPIV3Schema} for every served version of every CRD."""
    out = {}
    for file in sorted(crd_dir().glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    out[(spec["group"], version["name"], spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return out


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as plain JSON Schema: objects with declared properties reject
    unknown fields (unless x-kubernetes-preserve-unknown-fields), `nullable` admits null,
    int-or-string admits both. CEL rules (x-kubernetes-validations) are not evaluated here."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def resource_schema(open_api: dict[str, Any]) -> dict[str, Any]:
    """The CRD's schema plus the object envelope every resource has."""
    schema = copy.deepcopy(to_json_schema(open_api))
    schema.setdefault("properties", {}).update(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                    "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        }
    )
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    return schema


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for file in sorted(ISTIO_DIR.glob("*.y*ml")):
        for i, doc in enumerate(yaml.safe_load_all(file.read_text())):
            if doc is not None:
                yield f"{file.name}#{i}", doc


MANIFESTS = list(manifests())


def test_istio_folder_has_a_wasmplugin():
    kinds = [doc.get("kind") for _, doc in MANIFESTS]
    assert "WasmPlugin" in kinds


@pytest.mark.parametrize("name,doc", MANIFESTS, ids=[n for n, _ in MANIFESTS])
def test_manifest_matches_its_crd_schema(name, doc):
    group, _, version = doc["apiVersion"].rpartition("/")
    crds = load_crds()
    key = (group, version, doc["kind"])
    assert key in crds, f"{name}: no served CRD for {key}; known: {sorted(crds)}"
    errors = sorted(
        jsonschema.Draft7Validator(resource_schema(crds[key])).iter_errors(doc), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{name}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "name,doc", [(n, d) for n, d in MANIFESTS if d.get("kind") == "WasmPlugin"],
    ids=[n for n, d in MANIFESTS if d.get("kind") == "WasmPlugin"],
)
def test_wasmplugin_follows_the_cel_rules_and_our_policy(name, doc):
    spec = doc["spec"]
    # CEL rules of the CRD that plain JSON Schema cannot express.
    assert sum(k in spec for k in ("selector", "targetRef", "targetRefs")) <= 1
    assert spec["url"].split("://", 1)[0] in ("http", "https", "oci", "file")
    # Our own choices (istio/README.md explains them).
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert {"mode": "SERVER"} in spec["match"]


def test_istio_folder_has_a_trafficextension_beside_the_wasmplugin():
    kinds = [doc.get("kind") for _, doc in MANIFESTS]
    assert "TrafficExtension" in kinds and "WasmPlugin" in kinds


def wasm_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The wasm part of either API: a WasmPlugin's spec, a TrafficExtension's spec.wasm."""
    return doc["spec"]["wasm"] if doc["kind"] == "TrafficExtension" else doc["spec"]


PLUGINS = [(n, d) for n, d in MANIFESTS if d.get("kind") in ("WasmPlugin", "TrafficExtension")]


@pytest.mark.parametrize(
    "name,doc", [(n, d) for n, d in MANIFESTS if d.get("kind") == "TrafficExtension"],
    ids=[n for n, d in MANIFESTS if d.get("kind") == "TrafficExtension"],
)
def test_trafficextension_follows_the_cel_rules_and_our_policy(name, doc):
    spec = doc["spec"]
    # CEL rules of the CRD that plain JSON Schema cannot express.
    assert sum(k in spec for k in ("selector", "targetRefs")) <= 1
    assert ("wasm" in spec) != ("lua" in spec)
    wasm = spec["wasm"]
    assert wasm["url"].split("://", 1)[0] in ("http", "https", "oci", "file")
    for env in wasm.get("vmConfig", {}).get("env", []):
        assert env.get("valueFrom") != "HOST" or "value" not in env
    for ref in spec.get("targetRefs", []):
        assert not ref.get("namespace")
    # Our own choices, the same as the WasmPlugin's (istio/README.md explains them).
    assert spec["phase"] == "AUTHN"
    assert wasm["failStrategy"] == "FAIL_CLOSE"
    assert {"mode": "SERVER"} in spec["match"]


def test_trafficextension_and_wasmplugin_install_the_same_thing():
    """Whichever API an operator picks, the same image, selector, phase, match and config."""
    (wp,) = [d for _, d in MANIFESTS if d.get("kind") == "WasmPlugin"]
    (te,) = [d for _, d in MANIFESTS if d.get("kind") == "TrafficExtension"]
    assert wp["metadata"] == te["metadata"]
    for key in ("selector", "phase", "match"):
        assert wp["spec"][key] == te["spec"][key], key
    for key in ("url", "imagePullPolicy", "failStrategy", "pluginConfig"):
        assert wp["spec"][key] == te["spec"]["wasm"][key], key


def test_image_tag_in_the_manifests_is_the_crate_version():
    """`make oci` tags the image with the crate version; the manifests name that tag."""
    import re

    version = re.search(r'^version = "([^"]+)"', (harness.REPO_ROOT / "Cargo.toml").read_text(), re.M)
    assert version
    for name, doc in PLUGINS:
        assert wasm_spec(doc)["url"].endswith(f":{version.group(1)}"), name


def test_wasmplugin_plugin_config_is_the_demo_config():
    (doc,) = [d for _, d in MANIFESTS if d.get("kind") == "WasmPlugin" and d["metadata"]["name"] == "meshguard"]
    assert doc["spec"]["pluginConfig"] == harness.DEMO_PLUGIN_CONFIG


@pytest.mark.parametrize("name,doc", PLUGINS, ids=[n for n, _ in PLUGINS])
def test_plugin_config_passes_offline_validator(name, doc, offline_validator):
    code, out = offline_validator(wasm_spec(doc)["pluginConfig"])
    assert code == 0 and len(out.splitlines()) == 1 and "ok" in out, f"{name}: {out}"


def test_schema_check_refuses_unknown_and_mistyped_fields():
    """The schema conversion is strict enough to catch the mistakes it exists for."""
    crds = load_crds()
    schema = resource_schema(crds[("extensions.istio.io", "v1alpha1", "WasmPlugin")])
    good = {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "x"}, "spec": {"url": "oci://r/x:1", "pluginConfig": {"any": {"thing": 1}}}}
    jsonschema.validate(good, schema)
    for bad_spec in (
        {"url": "oci://r/x:1", "failstrategy": "FAIL_CLOSE"},  # misspelt field
        {"url": "oci://r/x:1", "phase": "AUTHENTICATION"},  # not in the enum
        {"url": "oci://r/x:1", "match": [{"mode": "SERVER", "port": 80}]},  # unknown nested field
        {"phase": "AUTHN"},  # url is required
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "spec": bad_spec}, schema)
