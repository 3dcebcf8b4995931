#!/usr/bin/env python3
"""Write meshguard.wasm as an OCI image layout that Istio's wasm fetcher accepts (`make oci`).

The image is the *compat* variant of the wasm image spec: an ordinary OCI image whose one (and so
last) layer is a gzip tar holding `plugin.wasm`, with the manifest annotation
`module.wasm.image/variant: compat`. Istio tries this variant first; every registry stores it,
because nothing in it is a custom media type.

The layout is reproducible: the same module and tag give the same bytes and so the same manifest
digest (tar entry with mtime 0 and owner 0, gzip header without time or name, sorted JSON).
Standard library only; no container engine.

    python3 tools/oci.py dist/meshguard.wasm dist/oci --tag 0.1.0 [--revision GITHASH]

prints the reference and the manifest digest, which is what `spec.sha256` of a WasmPlugin or
TrafficExtension pins for an `oci://` URL.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

WASM_MAGIC = b"\0asm"
PLUGIN_FILE = "plugin.wasm"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(module: bytes) -> bytes:
    """An uncompressed tar with one regular file, plugin.wasm, at the root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size = len(module)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(module))
    return buf.getvalue()


def gzip_stable(data: bytes) -> bytes:
    """gzip with no file name and mtime 0 in the header, so the bytes depend on the input only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def build(module: bytes, tag: str, revision: str | None) -> tuple[dict[str, bytes], bytes, dict]:
    """The blobs (digest -> bytes), the manifest bytes and the index of the image."""
    tar = layer_tar(module)
    layer = gzip_stable(tar)
    config = canonical(
        {
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
        }
    )
    annotations = {
        "module.wasm.image/variant": "compat",
        "org.opencontainers.image.title": "meshguard",
        "org.opencontainers.image.version": tag,
    }
    if revision:
        annotations["org.opencontainers.image.revision"] = revision
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": digest(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": LAYER_TYPE,
                    "digest": digest(layer),
                    "size": len(layer),
                    "annotations": {"org.opencontainers.image.title": PLUGIN_FILE},
                }
            ],
            "annotations": annotations,
        }
    )
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                "digest": digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    blobs = {digest(b): b for b in (layer, config, manifest)}
    return blobs, manifest, index


def write_layout(out: Path, blobs: dict[str, bytes], index: dict) -> None:
    """Replaces `out` with the layout (stale blobs of an earlier module would linger otherwise)."""
    if out.exists():
        if not (out / "oci-layout").is_file():
            raise SystemExit(f"{out} exists and is not an OCI layout; not overwriting it")
        shutil.rmtree(out)
    (out / "blobs" / "sha256").mkdir(parents=True)
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    for d, data in blobs.items():
        (out / "blobs" / "sha256" / d.removeprefix("sha256:")).write_bytes(data)
    (out / "index.json").write_bytes(canonical(index))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wasm", type=Path, help="the module (dist/meshguard.wasm)")
    p.add_argument("out", type=Path, help="the layout directory to (re)write (dist/oci)")
    p.add_argument("--tag", required=True, help="the image tag, e.g. the crate version")
    p.add_argument("--revision", help="git commit, recorded as an annotation")
    p.add_argument("--digest-file", type=Path, help="also write the manifest digest (hex) here")
    a = p.parse_args(argv)

    module = a.wasm.read_bytes()
    if not module.startswith(WASM_MAGIC) or len(module) < 8:
        print(f"{a.wasm}: not a wasm module", file=sys.stderr)
        return 1
    blobs, manifest, index = build(module, a.tag, a.revision)
    write_layout(a.out, blobs, index)
    hex_digest = hashlib.sha256(manifest).hexdigest()
    if a.digest_file:
        a.digest_file.write_text(hex_digest + "\n")
    print(f"{a.out}: oci:{a.out}:{a.tag} (compat image, layer {PLUGIN_FILE})")
    print(f"manifest digest (spec.sha256 for oci:// URLs): {hex_digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
