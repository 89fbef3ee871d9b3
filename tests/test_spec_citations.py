"""Every "spec section N" cited in the repository resolves to a section of docs/spec.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "docs" / "spec.md"
CITE = re.compile(r"spec\s+sections?\s+((?:\d+(?:\s*(?:,|and|-)\s*)?)+)", re.IGNORECASE)
TAGS = ("[paper]", "[code]", "[derived]", "[reconstructed]")


def _sections() -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\. ", SPEC.read_text(), flags=re.MULTILINE)}


def _citations(text: str) -> list[int]:
    out = []
    for m in CITE.finditer(text):
        out += [int(n) for n in re.findall(r"\d+", m.group(1))]
    return out


def _sources():
    for sub in ("tnt_ref", "proofs_check", "benchmarks", "tests", "docs"):
        for p in sorted((ROOT / sub).rglob("*")):
            if p.suffix in {".py", ".md", ".sh"} and p.is_file():
                yield p
    yield ROOT / "README.md"


def test_citation_parser():
    assert _citations("see spec section 3 and spec sections 4, 5 and 9; Spec section 10") == [3, 4, 5, 9, 10]


def test_every_citation_resolves():
    sections = _sections()
    assert sections == set(range(1, 11)), sorted(sections)
    bad, n = [], 0
    for p in _sources():
        for s in _citations(p.read_text(encoding="utf-8")):
            n += 1
            if s not in sections:
                bad.append(f"{p.relative_to(ROOT)}: spec section {s}")
    assert n >= 30, f"only {n} citations found: the parser is broken"
    assert not bad, "citations that docs/spec.md does not have:\n" + "\n".join(bad)


def test_spec_keeps_the_tags():
    text = SPEC.read_text()
    for tag in TAGS:
        assert text.count(f"**{tag}") + text.count(tag) >= 2, tag


def test_readme_links_the_spec():
    assert "docs/spec.md" in (ROOT / "README.md").read_text()
