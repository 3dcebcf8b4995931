#!/usr/bin/env python3
"""Per-crate size breakdown of an unstripped wasm module (`make size`).

Reads the module's code section (function bodies) and its `name` section (mangled Rust symbol
names), attributes each function body to a crate, and prints code bytes per crate, the data
segments (`.rodata`: string tables, Unicode tables, ...) and the other sections. Debug custom
sections (`.debug_*`, `name`, `producers`) are listed apart: they are stripped from the module
Envoy loads. Nothing to install: it parses the binary format itself.

Attribution, as cargo-bloat does it: the first path component of a demangled symbol, except
`<T as Trait>::f` (the crate of T, or of Trait when T is a primitive) and
`core::ptr::drop_in_place<T>` (the crate of T); generic std code instantiated for a crate's type
that is not a drop glue stays with std (monomorphised core/alloc code).

Usage: size.py MODULE.wasm [--top N] [--functions N]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

# The wasm binary reader the e2e harness uses too (standard library only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from wasmbin import MAGIC, leb, sections  # noqa: E402

STD = {"core", "alloc", "std", "compiler_builtins", "dlmalloc", "wasi", "__rustc"}


def legacy_components(sym: str) -> list[str] | None:
    """`_ZN4core3fmt5write17h..E` -> ['core', 'fmt', 'write', 'h..']"""
    if not sym.startswith("_ZN"):
        return None
    out, i = [], 3
    while i < len(sym) and sym[i].isdigit():
        j = i
        while j < len(sym) and sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        out.append(sym[j:j + n])
        i = j + n
    return out


def unescape(s: str) -> str:
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$BP$", "*"),
                 ("$u5b$", "["), ("$u5d$", "]"), ("$C$", ","), ("$u7b$", "{"), ("$u7d$", "}"),
                 ("..", "::"), ("$u27$", "'"), ("$u22$", '"')):
        s = s.replace(a, b)
    return s


def demangle(sym: str) -> str:
    comps = legacy_components(sym)
    if not comps:
        return sym
    if re.fullmatch(r"h[0-9a-f]{16}", comps[-1]):
        comps = comps[:-1]
    return "::".join(unescape(c) for c in comps).replace("_<", "<")


CRATE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def crate_of(name: str) -> str:
    """Crate a demangled function belongs to (see the module doc)."""
    if name.startswith("<"):
        inner = name[1:]
        # `<T as Trait>`: T's crate unless T is a primitive or a reference/slice of one.
        head = inner.lstrip("&*[ ").removeprefix("mut ").removeprefix("dyn ")
        m = CRATE_RE.match(head)
        if m and "::" in head[: head.find(" as ") if " as " in head else len(head)]:
            return m.group(0)
        t = inner.find(" as ")
        if t >= 0:
            m = CRATE_RE.match(inner[t + 4:])
            if m:
                return m.group(0)
        return m.group(0) if m else "?"
    m = re.match(r"core::ptr::drop_in_place<(.*)>$", name)
    if m:
        return crate_of(m.group(1).lstrip("&*( ").removeprefix("mut ") or "?")
    m = CRATE_RE.match(name)
    crate = m.group(0) if m else "?"
    if not name.startswith(crate + "::"):
        return "[non-Rust]"
    return crate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wasm")
    ap.add_argument("--top", type=int, default=25, help="crates listed (default 25)")
    ap.add_argument("--functions", type=int, default=0, help="also list the N largest functions")
    args = ap.parse_args()
    buf = open(args.wasm, "rb").read()
    if buf[:4] != MAGIC:
        sys.exit("not a wasm module")

    imported_funcs = 0
    bodies: list[int] = []
    names: dict[int, str] = {}
    data_bytes = 0
    per_section: dict[str, int] = defaultdict(int)
    debug_bytes = 0
    kinds = {1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
             7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}
    for sid, cname, body, end, total in sections(buf):
        if sid == 0:
            if cname.startswith(".debug") or cname in ("name", "producers", "target_features"):
                debug_bytes += total
            else:
                per_section[f"custom:{cname}"] += total
            if cname == "name":
                p = body
                while p < end:
                    sub = buf[p]
                    size, q = leb(buf, p + 1)
                    if sub == 1:
                        count, r = leb(buf, q)
                        for _ in range(count):
                            idx, r = leb(buf, r)
                            n, r = leb(buf, r)
                            names[idx] = buf[r:r + n].decode("utf-8", "replace")
                            r += n
                    p = q + size
            continue
        per_section[kinds.get(sid, str(sid))] += total
        if sid == 2:
            count, p = leb(buf, body)
            for _ in range(count):
                for _ in range(2):
                    n, p = leb(buf, p)
                    p += n
                kind = buf[p]
                p += 1
                if kind == 0:
                    _, p = leb(buf, p)
                    imported_funcs += 1
                elif kind == 1:
                    p += 1
                    flags, p = leb(buf, p)
                    _, p = leb(buf, p)
                    if flags & 1:
                        _, p = leb(buf, p)
                elif kind == 2:
                    flags, p = leb(buf, p)
                    _, p = leb(buf, p)
                    if flags & 1:
                        _, p = leb(buf, p)
                elif kind == 3:
                    p += 2
        elif sid == 10:
            count, p = leb(buf, body)
            for _ in range(count):
                size, q = leb(buf, p)
                bodies.append(q + size - p)
                p = q + size
        elif sid == 11:
            data_bytes += total

    per_crate: dict[str, int] = defaultdict(int)
    funcs = []
    for i, size in enumerate(bodies):
        raw = names.get(imported_funcs + i, f"func[{imported_funcs + i}]")
        name = demangle(raw)
        if raw.startswith("_ZN"):
            crate = crate_of(name)
        elif raw.startswith("_R"):
            # v0 mangling: the first crate root `C<disambiguator>_<len><name>`.
            m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)", raw)
            crate = raw[m.end():m.end() + int(m.group(1))] if m else "?"
        elif raw.startswith("func["):
            crate = "?"
        else:
            crate = "[C: ring, dlmalloc, libc]"
        per_crate[crate] += size
        funcs.append((size, name, crate))
    code = sum(bodies)
    loaded = len(buf) - debug_bytes
    print(f"module {args.wasm}: {len(buf)} bytes; without debug/name sections {loaded} bytes "
          f"({loaded / 1048576:.2f} MiB)")
    print(f"  code {code} ({100 * code / loaded:.1f}%), data {data_bytes} "
          f"({100 * data_bytes / loaded:.1f}%), other sections {loaded - code - data_bytes}")
    if not names:
        print("  (no name section: build unstripped for a per-crate breakdown)")
        return
    print(f"\n{'crate':<28}{'code bytes':>12}{'% code':>8}{'% module':>10}")
    for crate, size in sorted(per_crate.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{crate:<28}{size:>12}{100 * size / code:>8.1f}{100 * size / loaded:>10.1f}")
    rest = sorted(per_crate.items(), key=lambda kv: -kv[1])[args.top:]
    if rest:
        print(f"{'(' + str(len(rest)) + ' more)':<28}{sum(s for _, s in rest):>12}")
    print(f"{'data segments (.rodata)':<28}{data_bytes:>12}{'':>8}{100 * data_bytes / loaded:>10.1f}")
    if args.functions:
        print(f"\n{args.functions} largest functions:")
        for size, name, crate in sorted(funcs, reverse=True)[: args.functions]:
            print(f"{size:>9}  {name[:150]}")


if __name__ == "__main__":
    main()
