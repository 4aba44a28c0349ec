"""The distributions as the package index would see them, and `herd --version`.

The core ships as herd-testing (`herd` and `herd-core` are other projects on the index); every
plugin must ask for a range of it that holds the core's own version, or pip fetches someone else's.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from herd.cli.version import DISTRIBUTION, version_of
from tests.conftest import ROOT

from .conftest import run_herd

PLUGINS = sorted((ROOT / "plugins").glob("*/pyproject.toml"))
DISTRIBUTIONS = [ROOT / "pyproject.toml", *PLUGINS]
DEPENDENTS = [*PLUGINS, ROOT / "tests" / "external" / "herd-unshare" / "pyproject.toml"]


def project(pyproject: Path) -> dict[str, Any]:
    with pyproject.open("rb") as file:
        return tomllib.load(file)


def packages(pyproject: Path) -> list[Path]:
    """The top-level packages a distribution ships, as directories."""
    listed = project(pyproject)["tool"]["setuptools"]["packages"]
    if isinstance(listed, list):
        return [pyproject.parent / name for name in listed]
    [where] = listed["find"]["where"]
    return [path.parent for path in (pyproject.parent / where).glob("*/__init__.py")]


def test_the_core_is_named_as_herd_says() -> None:
    assert project(ROOT / "pyproject.toml")["project"]["name"] == DISTRIBUTION
    assert "Framework :: Pytest" in project(ROOT / "pyproject.toml")["project"]["classifiers"]


@pytest.mark.parametrize("pyproject", DEPENDENTS, ids=lambda path: path.parent.name)
def test_plugins_depend_on_a_range_of_the_core_that_holds_its_version(pyproject: Path) -> None:
    core_version = project(ROOT / "pyproject.toml")["project"]["version"]
    requirements = [Requirement(text) for text in project(pyproject)["project"]["dependencies"]]
    [core] = [r for r in requirements if canonicalize_name(r.name) == canonicalize_name(DISTRIBUTION)]
    assert core.specifier.contains(core_version), core
    assert any(spec.operator == "<" for spec in core.specifier), f"{core}: no upper bound"
    assert not [r for r in requirements if canonicalize_name(r.name) in {"herd", "herd-core"}]


@pytest.mark.parametrize("pyproject", DISTRIBUTIONS, ids=lambda path: path.parent.name)
def test_every_distribution_is_licensed_typed_and_described(pyproject: Path) -> None:
    metadata = project(pyproject)
    assert any(r.startswith("setuptools>=77") for r in metadata["build-system"]["requires"])
    assert metadata["project"]["license"] == "MIT"
    for name in metadata["project"]["license-files"]:
        assert (pyproject.parent / name).read_text() == (ROOT / "LICENSE").read_text()
    assert (pyproject.parent / metadata["project"]["readme"]).is_file()
    package_data = metadata["tool"]["setuptools"]["package-data"]
    for package in packages(pyproject):
        assert (package / "py.typed").is_file(), package
        assert package_data[package.name] == ["py.typed"]


def test_herd_version_names_the_core_and_each_plugin(good_and_broken: Path) -> None:
    lines = run_herd(good_and_broken, "--version").stdout.splitlines()
    assert lines[0] == f"{DISTRIBUTION} {version_of(DISTRIBUTION)}"
    assert version_of(DISTRIBUTION) == project(ROOT / "pyproject.toml")["project"]["version"]
    assert "herd-good 1.0: good" in lines
    assert "herd-broken 1.0: broken (failed to load)" in lines
