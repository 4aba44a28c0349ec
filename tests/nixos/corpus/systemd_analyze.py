"""nixpkgs nixos/tests/systemd-analyze.nix, restated for herd.

Source: nixpkgs, nixos/tests/systemd-analyze.nix at commit
14fd976016aee7e8a52f362b145a16947e111515. The script is nixpkgs' testScript, verbatim. nixpkgs is
Copyright (c) 2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine`, with nothing declared (nixpkgs' only settings are its kernel and sound, which
a container does not have). The script runs systemd-analyze on the machine's boot and copies its
output out with `copy_from_vm`.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

test = herd.Test(
    name="nixos-systemd-analyze",
    machines={"machine": {}},
    script="""
machine.wait_for_unit("multi-user.target")

# We create a special output directory to copy it as a whole
with subtest("Prepare output dir"):
    machine.succeed("mkdir systemd-analyze")


# Save the output into a file with given name inside the common
# output directory
def run_systemd_analyze(args, name):
    tgt_dir = "systemd-analyze"
    machine.succeed(
        "systemd-analyze {} > {}/{} 2> {}/{}.err".format(
            " ".join(args), tgt_dir, name, tgt_dir, name
        )
    )


with subtest("Print statistics"):
    run_systemd_analyze(["blame"], "blame.txt")
    run_systemd_analyze(["critical-chain"], "critical-chain.txt")
    run_systemd_analyze(["dot"], "dependencies.dot")
    run_systemd_analyze(["plot"], "systemd-analyze.svg")

# We copy the main graph into the $out (toplevel), and we also copy
# the entire output directory with additional data
with subtest("Copying the resulting data into $out"):
    machine.copy_from_vm("systemd-analyze/", "")
    machine.copy_from_vm("systemd-analyze/systemd-analyze.svg", "")
""",
    timeout=300,
)

ON_QEMU = False
