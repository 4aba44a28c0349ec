"""Plugin discovery and loading: stevedore finds entry points, a broken plugin breaks nothing else."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from herd import PluginError, SpecError
from herd.declare.spec import parse_test
from herd.hooks.manager import BACKENDS_GROUP, PLUGINS_GROUP, Plugins, installed
from herd.hooks.types import (
    Attachment,
    BackendInfo,
    Capability,
    ExecResult,
    Kind,
    MachineHandle,
    NetworkFeature,
    NetworkHandle,
    NetworkProviderInfo,
)
from herd.plugin import hookimpl
from herd.run.resolve import resolve_backends

from .conftest import BROKEN_BACKEND, GOOD_BACKEND, run_herd


def test_installed_lists_entry_points_without_importing_them(good_and_broken: Path) -> None:
    names = {ep.name for ep in installed(BACKENDS_GROUP)}
    assert {"good", "broken"} <= names
    assert "broken_backend" not in sys.modules


def test_only_the_named_backend_is_imported(good_and_broken: Path) -> None:
    plugins = Plugins()
    info = plugins.backend("good")
    assert info.kind is Kind.VM and Capability.SCREENSHOT in info.capabilities
    assert next(iter(info.host_checks())).name == "good thing"
    assert plugins.failures == []
    assert "broken_backend" not in sys.modules


def test_a_broken_plugin_is_reported_and_the_others_still_load(good_and_broken: Path) -> None:
    plugins = Plugins()
    plugins.load(BACKENDS_GROUP)
    assert "good" in plugins.backends
    [failure] = plugins.failures
    assert (failure.name, failure.distribution, failure.target) == ("broken", "herd-broken", "broken_backend")
    assert "ImportError: No module named 'libfoo'" in failure.error
    with pytest.raises(
        PluginError, match=r"backend 'broken' \(broken_backend, from herd-broken\) failed to load"
    ):
        plugins.backend("broken")


def test_an_unknown_backend_lists_the_installed_ones_and_the_package_to_install(
    good_and_broken: Path,
) -> None:
    with pytest.raises(PluginError) as caught:
        Plugins().backend("firecracker")
    message = str(caught.value)
    installed = re.search(r"no backend named 'firecracker' is installed \(installed: ([^)]*)\)", message)
    assert installed, message
    assert {"broken", "good"} <= set(installed.group(1).split(", ")), message
    assert "pip install herd-firecracker" in message


def test_the_default_backend_is_the_installed_one_with_the_highest_priority(
    plugin_site: Callable[..., Path],
) -> None:
    for name, priority in (("zeta", 900), ("alpha", 900), ("low", 1)):
        source = GOOD_BACKEND.replace('name="good"', f'name="{name}"').replace("{priority}", str(priority))
        plugin_site(f"herd-{name}", f"{name}_backend", source, {"herd.backends": {name: f"{name}_backend"}})
    assert Plugins().default_backend() == "alpha"  # the highest priority; a tie goes to the first name


def test_backend_resolution_validates_options_and_names_the_field(good_and_broken: Path) -> None:
    spec = parse_test(
        "t",
        {"a": {"backend": "good", "options": {"speed": 1, "colour": "red"}}, "b": {"backend": "firecracker"}},
        "pass",
    )
    with pytest.raises(SpecError) as caught:
        resolve_backends(spec, Plugins(), None)
    problems = caught.value.problems
    assert problems[0] == "test 't', machine 'a', field 'options': unknown option 'colour'"
    assert problems[1].startswith("test 't', machine 'b', field 'backend': no backend named 'firecracker'")


def test_backend_resolution_checks_the_machine_against_its_backend(good_and_broken: Path) -> None:
    spec = parse_test("t", {"small": {"backend": "good", "memory": 32}, "big": {"backend": "good"}}, "pass")
    with pytest.raises(SpecError) as caught:
        resolve_backends(spec, Plugins(), None)
    assert caught.value.problems == [
        "test 't', machine 'small', field 'memory': this backend needs at least 64 MiB"
    ]


def test_the_run_default_applies_to_machines_that_name_no_backend(good_and_broken: Path) -> None:
    spec = parse_test("t", {"a": {}, "b": {"backend": "good"}}, "pass")
    resolved, infos = resolve_backends(spec, Plugins(), "good")
    assert [m.backend for m in resolved.machines] == ["good", "good"]
    assert infos["a"].name == "good"


def test_a_plugin_must_register_backend_info(plugin_site: Callable[..., Path]) -> None:
    plugin_site(
        "herd-liar",
        "liar_backend",
        "from herd.plugin import hookimpl\n"
        "@hookimpl\ndef herd_register_backends(register):\n    register('not info')\n",
        {"herd.backends": {"liar": "liar_backend"}},
    )
    with pytest.raises(PluginError, match="registered 'not info', which is not a BackendInfo"):
        Plugins().backend("liar")


MISSPELLED_HOOK = """
@hookimpl
def herd_machine_exec(handle, command):  # herd_machine_execute
    raise AssertionError("herd never calls a hook it does not declare")
"""


@pytest.fixture
def misspelled(plugin_site: Callable[..., Path]) -> Path:
    """herd-good, and herd-typo: a working backend but for one misspelled hook."""
    plugin_site(
        "herd-good",
        "good_backend",
        GOOD_BACKEND.replace("{priority}", "5"),
        {"herd.backends": {"good": "good_backend"}},
    )
    source = GOOD_BACKEND.replace('name="good"', 'name="typo"').replace("{priority}", "5") + MISSPELLED_HOOK
    return plugin_site("herd-typo", "typo_backend", source, {"herd.backends": {"typo": "typo_backend"}})


def test_a_plugin_with_a_misspelled_hook_is_reported_and_not_used(misspelled: Path) -> None:
    plugins = Plugins()
    plugins.load(BACKENDS_GROUP)
    assert "good" in plugins.backends and "typo" not in plugins.backends
    [failure] = plugins.failures
    assert (failure.name, failure.distribution, failure.target) == ("typo", "herd-typo", "typo_backend")
    assert failure.error.startswith("PluginValidationError: unknown hook 'herd_machine_exec'")
    assert not plugins.manager.is_registered(sys.modules["typo_backend"])
    assert plugins.manager.get_plugin(f"{BACKENDS_GROUP}:typo") is None
    assert plugins.manager.hook.herd_machine_exec.get_hookimpls() == []
    plugins.manager.check_pending()  # what stays registered is sound
    with pytest.raises(
        PluginError,
        match=r"backend 'typo' \(typo_backend, from herd-typo\) failed to load: "
        r"PluginValidationError: unknown hook 'herd_machine_exec'",
    ):
        plugins.backend("typo")


def test_a_plugin_whose_hook_takes_a_parameter_the_hookspec_lacks_is_reported(
    plugin_site: Callable[..., Path],
) -> None:
    source = (
        "from herd.plugin import hookimpl\n"
        "@hookimpl\ndef herd_register_backends(register, colour):\n    pass\n"
    )
    plugin_site("herd-odd", "odd_backend", source, {"herd.backends": {"odd": "odd_backend"}})
    plugins = Plugins()
    with pytest.raises(
        PluginError, match=r"backend 'odd' .* failed to load: PluginValidationError: .*colour"
    ):
        plugins.backend("odd")
    assert not plugins.manager.is_registered(sys.modules["odd_backend"])


def test_an_optional_hook_herd_does_not_declare_is_accepted(plugin_site: Callable[..., Path]) -> None:
    """pluggy's way for a plugin to implement a hook that only a later herd declares."""
    optional = "\n@hookimpl(optionalhook=True)\ndef herd_machine_teleport(handle):\n    pass\n"
    source = GOOD_BACKEND.replace("{priority}", "5") + optional
    plugin_site("herd-good", "good_backend", source, {"herd.backends": {"good": "good_backend"}})
    plugins = Plugins()
    assert plugins.backend("good").name == "good"
    assert plugins.failures == []


def test_herd_plugins_shows_a_misspelled_hook_as_a_failure(misspelled: Path) -> None:
    lines = run_herd(misspelled, "plugins").stdout.splitlines()
    [typo] = [line for line in lines if line.split()[:2] == ["typo", "FAILED"]]
    assert "(herd-typo)" in typo and "unknown hook 'herd_machine_exec'" in typo
    assert any(line.split()[:2] == ["good", "loaded"] for line in lines)


def test_herd_plugins_shows_what_loaded_and_what_failed(good_and_broken: Path) -> None:
    lines = run_herd(good_and_broken, "plugins").stdout.splitlines()
    assert any(line.split()[:2] == ["good", "loaded"] and "(herd-good)" in line for line in lines)
    broken = [line for line in lines if line.split()[:2] == ["broken", "FAILED"]]
    assert broken and "(herd-broken)" in broken[0] and "libfoo" in broken[0]
    # The good backend declares no confinement: herd plugins says so plainly.
    assert any("NOT CONFINED: root in its machines may be root on the host" in line for line in lines)


def test_doctor_warns_of_a_backend_that_does_not_confine_its_machines() -> None:
    from herd.cli.doctor import confinement_check

    bare = BackendInfo(name="bare", kind=Kind.CONTAINER, capabilities=frozenset(), description="")
    confined = BackendInfo(
        name="tight", kind=Kind.CONTAINER, capabilities=frozenset({Capability.CONFINED}), description=""
    )
    warned, fine = confinement_check(bare), confinement_check(confined)
    assert (warned.ok, warned.warning) == (True, True) and warned.detail.startswith("NOT CONFINED")
    assert (fine.ok, fine.warning) == (True, False) and fine.detail.startswith("confined: root in its")


def test_herd_plugins_json_holds_what_the_text_shows(good_and_broken: Path) -> None:
    groups = json.loads(run_herd(good_and_broken, "plugins", "--json").stdout)
    backends = {entry["name"]: entry for entry in groups["herd.backends"]}
    good, broken = backends["good"], backends["broken"]
    assert (good["loaded"], good["distribution"]) == (True, "herd-good")
    assert good["backend"]["capabilities"] == ["screenshot"] and good["backend"]["confined"] is False
    assert broken["loaded"] is False and "libfoo" in broken["error"]


def test_herd_doctor_and_devices_json_report_the_broken_plugin(good_and_broken: Path) -> None:
    doctor = run_herd(good_and_broken, "doctor", "--json", check=False)
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 1 and report["ok"] is False
    assert {"section": "backend good", "name": "good thing", "ok": True, "detail": "present"}.items() <= next(
        check for check in report["checks"] if check["name"] == "good thing"
    ).items()
    assert [failure["name"] for failure in report["plugin_failures"]] == ["broken"]
    devices = run_herd(good_and_broken, "devices", "--json", check=False)
    assert devices.returncode == 1
    assert [failure["name"] for failure in json.loads(devices.stdout)["plugin_failures"]] == ["broken"]


class AnswersEveryHandle:
    """A plugin of one backend whose hooks answer whatever handle they are given, checking nothing."""

    def __init__(self, backend: str, registers: bool = True) -> None:
        self.backend = backend
        self.registers = registers

    @hookimpl
    def herd_register_backends(self, register: Callable[[BackendInfo], None]) -> None:
        if self.registers:
            register(BackendInfo(self.backend, Kind.CONTAINER, frozenset(), "answers every handle"))

    @hookimpl
    def herd_machine_execute(self, handle: MachineHandle, command: str) -> ExecResult:
        return ExecResult(0, f"{self.backend} ran {command} on {handle.name}".encode(), b"")


def test_a_machines_hooks_go_to_the_plugin_of_its_backend_alone() -> None:
    plugins = Plugins()
    for backend in ("one", "two"):
        plugins.register(AnswersEveryHandle(backend), name=f"{BACKENDS_GROUP}:{backend}")
    # registered last, so pluggy would ask it first: it registers no backend and is never asked
    plugins.register(AnswersEveryHandle("greedy", registers=False), name="test:greedy")

    def run(hooks: Any, backend: str) -> bytes:
        handle = MachineHandle(backend, "m")
        result = hooks.herd_machine_execute(handle=handle, command="true", timeout=None, stdin=b"")
        return bytes(result.stdout)

    assert run(plugins.backend_hooks("one"), "one") == b"one ran true on m"
    assert run(plugins.backend_hooks("two"), "two") == b"two ran true on m"
    assert run(plugins.hook, "one") == b"greedy ran true on m"  # what routing spares the backends
    # a plugin registered after the backend's hooks were taken is left out too
    hooks = plugins.backend_hooks("one")
    plugins.register(AnswersEveryHandle("late", registers=False), name="test:late")
    assert run(hooks, "one") == b"one ran true on m"


PROVIDER = """
from herd.plugin import NetworkFeature, NetworkProviderInfo, hookimpl

@hookimpl
def herd_register_network_providers(register):
    register(NetworkProviderInfo(name="{name}", description="a provider for tests",
                                 features=frozenset({{NetworkFeature.BLOCK}})))
"""


def test_a_network_provider_is_found_by_its_entry_point_or_else_in_the_whole_group(
    plugin_site: Callable[..., Path],
) -> None:
    plugin_site(
        "herd-mesh", "mesh_provider", PROVIDER.format(name="mesh"), {PLUGINS_GROUP: {"mesh": "mesh_provider"}}
    )
    plugin_site("herd-wires", "wires", PROVIDER.format(name="cables"), {PLUGINS_GROUP: {"wires": "wires"}})
    plugins = Plugins()
    assert plugins.provider("mesh").features == {NetworkFeature.BLOCK}
    assert "wires" not in sys.modules  # its entry point named the provider: nothing else loaded
    assert plugins.provider("cables").description == "a provider for tests"
    assert plugins.providers_of(f"{PLUGINS_GROUP}:wires") == [plugins.providers["cables"]]


def test_a_missing_network_provider_names_the_installed_ones_and_the_package_to_install(
    plugin_site: Callable[..., Path],
) -> None:
    plugin_site(
        "herd-mesh", "mesh_provider", PROVIDER.format(name="mesh"), {PLUGINS_GROUP: {"mesh": "mesh_provider"}}
    )
    plugin_site(
        "herd-broken", "broken_provider", BROKEN_BACKEND, {PLUGINS_GROUP: {"broken": "broken_provider"}}
    )
    plugins = Plugins()
    with pytest.raises(PluginError) as caught:
        plugins.provider("tunnel")
    installed = re.search(
        r"no network provider named 'tunnel' is installed \(installed: ([^)]*)\)", str(caught.value)
    )
    assert installed and "mesh" in installed.group(1).split(", ")
    assert "pip install herd-tunnel" in str(caught.value)
    with pytest.raises(
        PluginError, match=r"network provider 'broken' \(broken_provider, from herd-broken\) failed"
    ):
        plugins.provider("broken")


def test_a_plugin_that_registers_a_taken_provider_name_fails_alone(plugin_site: Callable[..., Path]) -> None:
    plugin_site(
        "herd-mesh", "mesh_provider", PROVIDER.format(name="mesh"), {PLUGINS_GROUP: {"mesh": "mesh_provider"}}
    )
    plugin_site(
        "herd-copy", "copy_provider", PROVIDER.format(name="mesh"), {PLUGINS_GROUP: {"copy": "copy_provider"}}
    )
    plugins = Plugins()
    plugins.load(PLUGINS_GROUP)
    [failure] = [f for f in plugins.failures if f.name in ("mesh", "copy")]
    assert "two plugins register a network provider named 'mesh'" in failure.error
    assert plugins.provider("mesh").name == "mesh"  # the first one's, still working
    assert not plugins.manager.is_registered(sys.modules[f"{failure.name}_provider"])


class PlacesEveryNetwork:
    """A plugin of one network provider whose hooks answer for whatever network they are given."""

    def __init__(self, provider: str, registers: bool = True) -> None:
        self.provider = provider
        self.registers = registers

    @hookimpl
    def herd_register_network_providers(self, register: Callable[[NetworkProviderInfo], None]) -> None:
        if self.registers:
            register(NetworkProviderInfo(self.provider, "places every network"))

    @hookimpl
    def herd_network_block(self, handle: NetworkHandle, attachment: Attachment, blocked: bool) -> bool:
        self.asked = (handle.provider, attachment.network, blocked)
        return True


def test_a_networks_hooks_go_to_the_plugin_of_its_provider_alone() -> None:
    plugins = Plugins()
    one, two, greedy = PlacesEveryNetwork("one"), PlacesEveryNetwork("two"), PlacesEveryNetwork("x", False)
    for name, plugin in (("one", one), ("two", two), ("greedy", greedy)):
        plugins.register(plugin, name=f"{PLUGINS_GROUP}:{name}")
    attachment = Attachment("lan", "br", "link", "eth0", "02:00:00:00:00:01", ("10.0.0.1/24",))
    plugins.provider_hooks("two").herd_network_block(
        handle=NetworkHandle("two", "abcde", ()), attachment=attachment, blocked=True
    )
    assert two.asked == ("two", "lan", True)
    assert not hasattr(one, "asked") and not hasattr(greedy, "asked")


def test_herd_plugins_lists_network_providers_in_text_and_json(plugin_site: Callable[..., Path]) -> None:
    site = plugin_site(
        "herd-mesh", "mesh_provider", PROVIDER.format(name="mesh"), {PLUGINS_GROUP: {"mesh": "mesh_provider"}}
    )
    text = run_herd(site, "plugins").stdout
    assert "network provider mesh: a provider for tests" in text and "features: block" in text
    [mesh] = [
        e
        for e in json.loads(run_herd(site, "plugins", "--json").stdout)[PLUGINS_GROUP]
        if e["name"] == "mesh"
    ]
    assert mesh["network_providers"] == [
        {"name": "mesh", "description": "a provider for tests", "features": ["block"]}
    ]
