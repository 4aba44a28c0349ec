"""A run's images: checked against the providers and backends before the run, resolved once per
distinct image before any machine boots, every failure naming the test, the machine and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from herd import SpecError
from herd.declare.spec import MachineSpec, parse_test
from herd.hooks.manager import Plugins
from herd.hooks.types import BackendInfo, ImageRoot, Kind, Layer, Tree
from herd.plugin import ImageError, hookimpl
from herd.report.log import RunLog
from herd.run.images import check_images, label, resolve_images

ROOT = ImageRoot("test:app", (("etc", None),), (), (Tree("/etc", (Layer("/srv/app/etc"),)),))


class Provider:
    """An image provider of the kind `test`, which records what it is asked."""

    def __init__(self) -> None:
        self.resolved: list[tuple[str, tuple[str, ...], int]] = []

    @hookimpl
    def herd_image_kinds(self, offer: Any) -> None:
        offer("test", "test:NAME, an image for herd's tests")

    @hookimpl
    def herd_image_check(self, machine: MachineSpec, kind: str) -> list[tuple[str, str]] | None:
        if kind != "test":
            return None
        return [("image", "no test image 'missing'")] if machine.image == "test:missing" else []

    @hookimpl
    def herd_image_resolve(self, machine: MachineSpec, kind: str, id_shift: int, progress: Any) -> Any:
        if kind != "test":
            return None
        self.resolved.append((str(machine.image), machine.packages, id_shift))
        if machine.image == "test:broken":
            raise ImageError("the tool said: corrupt archive")
        if machine.packages == ("nope",):
            raise ImageError("E: Unable to locate package nope", "packages")
        progress("unpacking")
        return ROOT


def _backend(name: str, images: frozenset[str], id_shift: int = 0) -> BackendInfo:
    return BackendInfo(
        name, Kind.CONTAINER, frozenset(), "a backend for tests", id_shift=id_shift, images=images
    )


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def plugins(provider: Provider) -> Plugins:
    plugins = Plugins()
    plugins.register(provider, "test-images")
    return plugins


def test_an_unknown_kind_names_the_field_and_the_installed_providers(plugins: Plugins) -> None:
    spec = parse_test("t", {"m": {"image": "nosuch:thing"}}, "pass")
    with pytest.raises(SpecError) as caught:
        check_images(spec, plugins, {"m": _backend("any", frozenset({"host", "test"}))})
    [message] = caught.value.problems
    assert message.startswith("test 't', machine 'm', field 'image': no installed plugin provides images")
    assert (
        "'host': the host's own OS" in message and "'test': test:NAME, an image for herd's tests" in message
    )


def test_a_providers_problems_and_a_backend_that_cannot_boot_the_kind_are_refused(plugins: Plugins) -> None:
    spec = parse_test("t", {"a": {"image": "test:missing"}, "b": {"image": "test:fine"}, "c": {}}, "pass")
    backends = {name: _backend("hostonly", frozenset({"host"})) for name in "bc"}
    backends["a"] = _backend("both", frozenset({"host", "test"}))
    with pytest.raises(SpecError) as caught:
        check_images(spec, plugins, backends)
    assert caught.value.problems[0] == "test 't', machine 'a', field 'image': no test image 'missing'"
    [refused] = caught.value.problems[1:]
    assert refused.startswith(
        "test 't', machine 'b', field 'image': backend 'hostonly' cannot boot images of kind 'test' "
        "(it boots host; backends that boot 'test': "
    )


def test_the_host_image_takes_no_value(plugins: Plugins) -> None:
    spec = parse_test("t", {"m": {"image": "host:jammy"}}, "pass")
    with pytest.raises(SpecError, match="field 'image': 'host:jammy': the host image is 'host'"):
        check_images(spec, plugins, {"m": _backend("any", frozenset({"host"}))})


def test_machines_that_ask_the_same_share_one_resolution(plugins: Plugins, provider: Provider) -> None:
    machines = {
        "a": {"image": "test:app", "packages": ["curl", "vim"]},
        "b": {"image": "test:app", "packages": ["vim", "curl"]},
        "c": {"image": "test:app"},
        "d": {"image": "test:app"},
    }
    spec = parse_test("t", machines, "pass")
    backends = {name: _backend("x", frozenset({"test"}), 7 if name == "d" else 0) for name in machines}
    images = resolve_images(spec, plugins, backends, RunLog(None, None))
    assert images == dict.fromkeys(machines, ROOT)
    assert provider.resolved == [
        ("test:app", ("curl", "vim"), 0),
        ("test:app", (), 0),
        ("test:app", (), 7),  # another id shift: prepared anew
    ]


def test_an_image_that_cannot_be_had_names_every_machine_and_its_field(
    plugins: Plugins, tmp_path: Path
) -> None:
    machines = {
        "a": {"image": "test:broken"},
        "b": {"image": "test:broken"},
        "c": {"image": "test:app", "packages": ["nope"]},
    }
    spec = parse_test("t", machines, "pass")
    backends = {name: _backend("x", frozenset({"test"})) for name in machines}
    log = RunLog(tmp_path / "log.txt", None)
    with pytest.raises(SpecError) as caught:
        resolve_images(spec, plugins, backends, log)
    log.close()
    assert caught.value.problems == [
        "test 't', machine 'a', field 'image': the tool said: corrupt archive",
        "test 't', machine 'b', field 'image': the tool said: corrupt archive",
        "test 't', machine 'c', field 'packages': E: Unable to locate package nope",
    ]


def test_a_build_reports_its_steps_with_the_time_it_took(plugins: Plugins, tmp_path: Path) -> None:
    spec = parse_test("t", {"m": {"image": "test:app", "packages": ["curl"]}}, "pass")
    log = RunLog(tmp_path / "log.txt", None)
    resolve_images(spec, plugins, {"m": _backend("x", frozenset({"test"}))}, log)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert "image test:app + curl: unpacking · 0 s" in text
    assert "image test:app: ready in " in text
    assert label(spec.machines[0]) == "test:app + curl"
