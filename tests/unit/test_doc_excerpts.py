"""Code the docs show from the repository is that code: each block marked `<!-- excerpt: PATH -->`
appears, verbatim, in the file at PATH, so a change to the file that the docs miss fails here."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

EXCERPT = re.compile(r"^<!-- excerpt: (\S+) -->\n```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOCS = sorted((ROOT / "docs").glob("*.md"))


def excerpts() -> list[tuple[str, str, str]]:
    """(doc, path, code) of every excerpt in docs/."""
    return [(doc.name, match[1], match[2]) for doc in DOCS for match in EXCERPT.finditer(doc.read_text())]


@pytest.mark.parametrize(("doc", "path", "code"), excerpts(), ids=lambda value: str(value)[:40])
def test_an_excerpt_is_the_code_of_its_file(doc: str, path: str, code: str) -> None:
    assert code in (ROOT / path).read_text(), f"{doc} shows code that {path} does not hold"


def test_the_plugin_guide_shows_its_backend_code_as_excerpts() -> None:
    """The marker is found (else the test above would check nothing): the nspawn backend's routed
    hooks, and herd-unshare's handle and hooks."""
    paths = [path for doc, path, _ in excerpts() if doc == "plugins.md"]
    assert paths.count("plugins/nspawn/herd_nspawn/__init__.py") == 1
    assert paths.count("tests/external/herd-unshare/herd_unshare/__init__.py") == 2
