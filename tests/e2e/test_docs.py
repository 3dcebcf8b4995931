"""The documentation stays navigable: README.md stays short, every relative link in README.md and
docs/*.md resolves (file and #anchor), every reason code has its row on the architecture page, and
the README's tour shows the requests tools/demo.py prints.

Hermetic and fast: it reads only files of this repository; no Envoy, no module, no network.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_BYTES = 15 * 1024

PAGES = [README, *sorted(DOCS.glob("*.md"))]

# [text](target) outside code; images too. Autolinks and reference links are not used here.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(INLINE_CODE.sub("", line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # links keep their text
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(path: Path) -> list[str]:
    links = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            links.append(target)
    return links


def test_readme_stays_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (limit {README_MAX_BYTES}): move detail into a docs/ page and link it"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def reason_codes() -> list[str]:
    """Every reason code `Reason::code` returns (src/error.rs)."""
    text = (ROOT / "src" / "error.rs").read_text(encoding="utf-8")
    codes = re.findall(r'Reason::\w+\s*=>\s*"([a-z0-9_]+)"', text)
    assert codes, "no `Reason::X => \"code\"` arms found in src/error.rs"
    return sorted(set(codes))


def test_every_reason_code_has_a_row_on_the_architecture_page():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    rows = {m for m in re.findall(r"^\|\s*`([a-z0-9_]+)`", text, re.M)}
    missing = [code for code in reason_codes() if code not in rows]
    assert not missing, (
        "docs/architecture.md lacks a reason-table row (`| `code` | ...`) for: " + ", ".join(missing)
    )


def test_readme_tour_shows_the_demo_requests():
    sys.path.insert(0, str(ROOT / "tools"))
    import demo  # tools/demo.py: the requests `make run` prints

    readme = README.read_text(encoding="utf-8")
    missing = [f"{ex.method} {ex.path}" for ex in demo.EXAMPLES
               if f"http://127.0.0.1:10000{ex.path}" not in readme]
    assert not missing, "README.md's tour lacks these requests of tools/demo.py: " + ", ".join(missing)
