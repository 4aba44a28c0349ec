"""Images: the backend boots a machine of every image kind it declares (`BackendInfo.images`), beside
one of the host image, each reaching the other by name; the run leaves nothing behind.

Which image stands for a kind is the runner's to say, for only the image providers know what their
values look like: `HERD_CONFORMANCE_IMAGES` lists images separated by spaces, each `KIND:VALUE`
(`debian:bookworm oci:/srv/app.tar nixos:/nix/store/…-nixos-system-…`). A kind the backend
declares and that names no image is skipped, saying so; `host` needs none.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herd.declare.spec import HOST_IMAGE, image_kind
from herd.hooks.manager import Plugins
from herd.hooks.types import Capability
from herd.host.residue import leftovers
from herd.run.testdef import Test
from herd.testing.pytest_plugin import backend_setting

EXAMPLES = "HERD_CONFORMANCE_IMAGES"
KINDS = ("host", "debian", "oci", "docker", "nixos")


def _examples() -> dict[str, str]:
    given = os.environ.get(EXAMPLES, "").split()
    return {HOST_IMAGE: HOST_IMAGE, **{image_kind(image): image for image in given}}


def _script_for(systemd: bool):  # type: ignore[no-untyped-def]
    """The test's script; with `systemd`, the image's own systemd must come up whole too."""

    def script(image, host, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        if systemd:
            image.wait_for_unit("multi-user.target")
        assert image.succeed("hostname").strip() == "image"
        image.succeed("getent hosts host")
        host.succeed("getent hosts image")
        assert image.succeed("cat /etc/machine-id").strip() != host.succeed("cat /etc/machine-id").strip()

    return script


@pytest.mark.parametrize("kind", sorted({*KINDS, *_examples()}))
def test_a_machine_of_each_declared_image_kind_boots(
    kind: str, pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    plugins = Plugins()
    backend = plugins.backend(backend_setting(pytestconfig) or plugins.default_backend())
    if kind not in backend.images:
        pytest.skip(f"backend {backend.name!r} does not boot images of kind {kind!r}")
    image = _examples().get(kind)
    if image is None:
        pytest.skip(f"no image of kind {kind!r} to boot: name one in {EXAMPLES}")
    machines = {"image": {"image": image}, "host": {}}
    test = Test(
        name=f"image-{kind}",
        machines=machines,
        script=_script_for(Capability.SYSTEMD in backend.capabilities),
    )
    outcome = test.run(backend=backend.name, output_dir=tmp_path / "out", terminal=None)
    assert outcome.passed, outcome.error
    left = leftovers(outcome.run_id, plugins.load_all())
    assert not left, f"the run {outcome.run_id} left: {left}"
