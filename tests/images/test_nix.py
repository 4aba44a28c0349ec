"""nix/: every file parses, and the test file that machines.nix makes is herd's.

Nix here is Debian's nix-bin, with no nixpkgs and no binary cache: the flake, the module and the
closures of machines.nix are not built here (docs/images.md says what has not been run). What
needs only Nix's builtins is evaluated: the text of the generated test file, which herd loads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from herd.run.loader import load_tests
from tests.conftest import ROOT

NIX = ROOT / "nix"
pytestmark = pytest.mark.skipif(
    shutil.which("nix-instantiate") is None, reason="needs nix-instantiate (nix-bin)"
)


@pytest.mark.parametrize("name", sorted(path.name for path in NIX.glob("*.nix")))
def test_every_nix_file_parses(name: str) -> None:
    subprocess.run(["nix-instantiate", "--parse", str(NIX / name)], check=True, capture_output=True)


def test_the_generated_test_file_declares_the_machines_systems(tmp_path: Path) -> None:
    system = "/nix/store/0c7ckvqjmmfnh8dc0yg3bpv5ha8ajhdc-nixos-system-server-25.05"
    expression = f"""import {NIX}/testfile.nix {{
      name = "generated";
      machines.server = {{ image = "{system}"; services = [ "nginx.service" ]; }};
      machines.client.image = "{system}";
      script = "start_all()\\nclient.succeed(\\"curl -sf 'http://server/?a=\\\\\\"b\\\\\\"'\\")";
    }}"""
    evaluated = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", expression],
        check=True,
        capture_output=True,
        text=True,
    )
    path = tmp_path / "test.py"
    path.write_text(json.loads(evaluated.stdout))
    [test] = load_tests(path)
    machines = {machine.name: machine for machine in test.spec.machines}
    assert machines["server"].image == {"nixos": system}
    assert machines["server"].services == ("nginx.service",)
    assert machines["client"].image == {"nixos": system}
    assert test.spec.script == 'start_all()\nclient.succeed("curl -sf \'http://server/?a=\\"b\\"\'")'
