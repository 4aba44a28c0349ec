"""Tests of nixpkgs' `nixos/tests`, restated for herd: each module declares one `herd.Test` named
`test` (so `herd run tests/nixos/corpus/<name>.py` runs it), with nixpkgs' script verbatim.

Besides `test`, a module says with `ON_QEMU` whether the `qemu` tox environment runs it on QEMU
VMs too.

The modules import nothing of herd's test suite, so that `herd run` loads them from anywhere.
"""
