"""Fixtures for unit tests: fake plugin distributions on a temporary sys.path entry, and machines
of the Machine API on in-memory machines."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from herd.declare.spec import parse_test
from herd.hooks.types import Attachment, Capability, NetworkPlan, NicPlan
from herd.run.machine import Machine

from .inmemory import InMemoryMachine

GOOD_BACKEND = """
from herd.plugin import BackendInfo, Capability, HostCheck, Kind, hookimpl

def checks():
    yield HostCheck("good thing", True, "present")

def validate(options):
    return [f"unknown option {name!r}" for name in options if name != "speed"]

def validate_machine(machine):
    return [("memory", "this backend needs at least 64 MiB")] if machine.memory < 64 else []

@hookimpl
def herd_register_backends(register):
    register(BackendInfo(
        name="good", kind=Kind.VM, capabilities=frozenset({Capability.SCREENSHOT}),
        description="a backend for tests", priority={priority}, host_checks=checks, validate_options=validate,
        validate_machine=validate_machine,
    ))
"""

BROKEN_BACKEND = """
raise ImportError("No module named 'libfoo' (a dependency the broken plugin lacks)")
"""


def place(network: NetworkPlan, nic: NicPlan) -> Attachment:
    """A network provider's placement of a NIC, as simple as can be: a bridge per network, a link
    per NIC (for tests that plan networks without making them)."""
    return Attachment(
        network=nic.network,
        bridge=f"br-{network.name}",
        host_link=f"{nic.machine}-{network.index}",
        guest_link=nic.guest_link,
        mac=f"02:00:00:00:{network.index:02x}:{nic.machine_index:02x}",
        addresses=nic.addresses,
    )


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Make installable-looking distributions under sys.path entries; returns a factory.

    stevedore caches entry points per sys.path in the process, so a distribution added after a
    lookup goes into a new entry (`site=`) to be seen.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ExtensionManager.ENTRY_POINT_CACHE.clear()

    def add(
        distribution: str,
        package: str,
        source: str,
        entry_points: dict[str, dict[str, str]],
        site: str = "site",
    ) -> Path:
        site_dir = tmp_path / site
        if not site_dir.exists():
            site_dir.mkdir()
            monkeypatch.syspath_prepend(str(site_dir))
        (site_dir / package).mkdir()
        (site_dir / package / "__init__.py").write_text(textwrap.dedent(source))
        info = site_dir / f"{distribution.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
        (info / "top_level.txt").write_text(f"{package}\n")
        lines = []
        for group, names in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {target}" for name, target in names.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        ExtensionManager.ENTRY_POINT_CACHE.clear()
        return site_dir

    return add


@pytest.fixture
def good_and_broken(plugin_site: Callable[..., Path]) -> Iterator[Path]:
    plugin_site(
        "herd-good",
        "good_backend",
        GOOD_BACKEND.replace("{priority}", "5"),
        {"herd.backends": {"good": "good_backend"}},
    )
    site = plugin_site(
        "herd-broken", "broken_backend", BROKEN_BACKEND, {"herd.backends": {"broken": "broken_backend"}}
    )
    yield site
    ExtensionManager.ENTRY_POINT_CACHE.clear()


def run_herd(site: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`herd ARGUMENTS` in a new process that sees the distributions of `site` (and a cold cache);
    `check`: raise unless it exits with status 0."""
    env = dict(os.environ, PYTHONPATH=str(site), XDG_CACHE_HOME=str(site.parent / "cache2"))
    return subprocess.run(
        [sys.executable, "-m", "herd", *arguments], capture_output=True, text=True, env=env, check=check
    )


MakeMachine = Callable[..., tuple[Machine, InMemoryMachine]]


@pytest.fixture
def make_machine(tmp_path: Path) -> Iterator[MakeMachine]:
    """Makes `server`, a Machine on an in-memory machine with the capabilities given; `others`
    names the backends that have a capability it lacks."""
    made: list[InMemoryMachine] = []

    def make(
        *capabilities: Capability, others: dict[Capability, list[str]] | None = None
    ) -> tuple[Machine, InMemoryMachine]:
        spec = parse_test("api", {"server": {"backend": "memory"}}, None).machines[0]
        memory = InMemoryMachine("server", tmp_path, frozenset(capabilities), others)
        made.append(memory)
        return Machine(spec, memory), memory

    yield make
    for memory in made:
        memory.log.close()
