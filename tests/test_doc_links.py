"""The documents' relative links resolve: each file exists and each #anchor is a heading there, so moving a
section (the quality study moved from README.md to bench/QUALITY.md) cannot leave a reader at a dead link."""
import re

import pytest

from conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def documents():
    """The project's documents (not the ones pip put in .venv, nor a run's model card under an output dir)."""
    return sorted({ROOT / "README.md", *ROOT.glob("bench/*.md"), *ROOT.glob("recipes/*/README.md"),
                   *ROOT.glob("studies/*.md")})


def anchor(heading):
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {anchor(line.lstrip("#")) for line in FENCE.sub("", path.read_text()).splitlines()
            if line.startswith("#")}


def dead_links(path):
    found = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            found.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            found.append(f"{target}: no heading '#{fragment}' in {linked.name}")
    return found


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert dead_links(path) == []


def test_the_check_catches_a_dead_file_and_a_dead_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Against HF's defaults, over seeds\n")
    doc = tmp_path / "b.md"
    doc.write_text("[ok](a.md#against-hfs-defaults-over-seeds) [gone](c.md) [moved](a.md#quality)\n"
                   "```\n[in code](nowhere.md)\n```\n")
    assert dead_links(doc) == ["c.md: no such file", "a.md#quality: no heading '#quality' in a.md"]
