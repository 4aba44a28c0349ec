"""herd's pytest plugin, where it needs no machine: what it tells pytest."""

from __future__ import annotations

import pytest


def test_the_marker_description_names_every_argument(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["@pytest.mark.herd(machines, networks=None, timeout=None, requires=()): *"])
