"""`herd --version`: the core's distribution and version, and those of each installed plugin."""

from __future__ import annotations

import importlib.metadata

from herd.hooks.manager import GROUPS, Plugins, distribution_of, installed

# The core's distribution name: `herd` and `herd-core` are other projects' on the package index.
DISTRIBUTION = "herd-testing"


def version_of(distribution: str) -> str:
    """The installed version of `distribution`, or '?' when it is not installed (a bare checkout)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def report(plugins: Plugins) -> list[str]:
    """The core's line, then a line per plugin distribution naming the entry points it loaded.

    Loads every plugin; one that failed says so (`herd plugins` says why).
    """
    plugins.load_all()
    failed = {(failure.group, failure.name) for failure in plugins.failures}
    names: dict[str, list[str]] = {}
    for group in GROUPS:
        for entry_point in installed(group):
            state = " (failed to load)" if (group, entry_point.name) in failed else ""
            names.setdefault(distribution_of(entry_point), []).append(entry_point.name + state)
    lines = [f"{DISTRIBUTION} {version_of(DISTRIBUTION)}"]
    lines += [
        f"{distribution} {version_of(distribution)}: {', '.join(sorted(entries))}"
        for distribution, entries in sorted(names.items())
    ]
    return lines
