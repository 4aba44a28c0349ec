"""Debian roots built with mmdebstrap from the host's Debian mirror: `"image": "debian:bookworm"`.

A root holds Debian's required packages, apt, and what a herd machine needs: systemd as its init
(systemd, systemd-sysv, dbus), iproute2 (a VM's network unit), and python3 (herd's command agent
in a VM). It keeps apt's package lists as the build left them: a machine's `packages` are
installed from them in a layer over the root. mmdebstrap runs as root in a mount and PID namespace
of its own, so the file systems it mounts in the root while it installs, and every process it
starts, go with it if it is killed. While it runs, its lines are turned into progress: the step it
is at and the package it handles.

A root is built once per suite, mirror and package list, and kept in herd's image cache: a later
run boots it at once. The mirror's newer packages reach it when the cache entry is pruned.
"""

from __future__ import annotations

import collections
import hashlib
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from herd.plugin import HerdError, ImageError, ImageRoot, MachineSpec, imagecache, libc
from herd_images import mirror, roots

MMDEBSTRAP = "mmdebstrap"
FORMAT = "debian 2"  # part of every key: a change to how roots are built makes new ones
# What every Debian image holds beyond Debian's required packages and apt.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "python3")
SUITE = re.compile(r"[a-z][a-z0-9.-]*")
PR_SET_PDEATHSIG = 1
ERROR_LINES = 12  # of mmdebstrap's output, in the error of a build that failed
_STEP = re.compile(r"^I: (?P<step>.+?)(?:\.\.\.)?$")
_PACKAGE = re.compile(
    r"^(?:(?P<verb>Unpacking|Setting up) (?P<name>[^ :]+)|Get:\d+ \S+ \S+ \S+ (?P<get>[^ :]+))"
)
_VERBS = {"Unpacking": "unpacking", "Setting up": "setting up", None: "downloading"}


def _die_with_parent() -> None:
    """In the child, before exec: die when the herd process that started the build does."""
    libc.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def command(suite: str, target: Path, mirror: str, packages: tuple[str, ...] = ()) -> list[str]:
    """mmdebstrap's command line, in namespaces of its own (see the module's docstring)."""
    include = ",".join((*BASE_PACKAGES, *packages))
    return [
        "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
        MMDEBSTRAP, "--verbose", "--mode=root", "--variant=apt", f"--include={include}",
        "--components=main", "--skip=cleanup/apt/lists", suite, str(target), mirror,
    ]  # fmt: skip


def progress_of(line: str) -> str | None:
    """What a line of mmdebstrap's verbose output says it is doing, or None for other lines."""
    if step := _STEP.match(line):
        return step["step"]
    if package := _PACKAGE.match(line):
        return f"{_VERBS[package['verb']]} {package['name'] or package['get']}"
    return None


def build(
    suite: str, target: Path, mirror: str, progress: Callable[[str], None], packages: tuple[str, ...] = ()
) -> None:
    """Build the suite's root in `target` (which must not exist). ImageError, with mmdebstrap's own
    message, when it fails: an unknown suite, a package the mirror does not have."""
    if problems := check_suite(suite):
        raise ImageError(problems[0])
    tail: collections.deque[str] = collections.deque(maxlen=ERROR_LINES)
    errors: list[str] = []
    try:
        process = subprocess.Popen(
            command(suite, target, mirror, packages),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (prctl alone, before exec)
        )
    except FileNotFoundError:
        raise HerdError("Debian images are built with mmdebstrap: apt-get install mmdebstrap") from None
    assert process.stdout is not None
    with process:
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            if line.startswith(("E: ", "Err:")) or (line.startswith("  ") and errors):
                errors.append(line.strip())
            if (doing := progress_of(line)) is not None:
                progress(doing)
    if process.returncode != 0:
        said = "\n".join(errors or tail)
        raise ImageError(f"mmdebstrap could not build Debian {suite!r} from {mirror}:\n{said}")


def _suite(machine: MachineSpec) -> str:
    return str(machine.image).partition(":")[2]


def check_suite(suite: str) -> list[str]:
    if not SUITE.fullmatch(suite):
        return [f"{suite!r} is not the name of a Debian suite (bookworm, trixie, stable…)"]
    return []


def check(machine: MachineSpec, kind: str) -> list[tuple[str, str]]:
    return [("image", message) for message in check_suite(_suite(machine))]


def resolve(machine: MachineSpec, kind: str, progress: Callable[[str], None]) -> ImageRoot:
    """The suite's root, built now unless the cache has it."""
    suite = _suite(machine)
    try:
        source = mirror.debian_mirror()
    except HerdError as error:
        raise ImageError(str(error)) from None
    key = hashlib.sha256(repr((FORMAT, suite, source, BASE_PACKAGES)).encode()).hexdigest()[:16]
    entry = imagecache.ensure(
        "debian",
        f"{suite}-{key}",
        f"debian:{suite} from {source}",
        lambda directory: build(suite, directory / "root", source, progress),
        progress,
    )
    return roots.image_root(entry / "root", f"debian:{suite}", machine.packages, progress)
