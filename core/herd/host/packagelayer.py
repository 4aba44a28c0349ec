"""A layer of Debian packages over an image: exactly what installing them adds, cached.

The layer is built by the image's own apt and dpkg, from the package mirror its apt sources name,
in overlays over the image's top-level directories (/usr, /etc, /var, …): the overlays' upper
directories record what the installation adds or changes, and become the layer. The build runs
in a mount and PID namespace of its own, chrooted into the overlays, with /proc, a minimal /dev,
a fresh /tmp and /run, and a policy-rc.d that starts no service; apt's downloads go to a scratch
directory, never into the layer. It dies with herd (a parent-death signal, and the PID namespace
takes every process of the build with it).

What the layer must not carry is taken out once apt is done: the image's files that the
installation merely rewrote and that a machine may not see (`hostsnapshot`'s rule: a file others
may not read that is not a package's own configuration, such as /etc/shadow, rewritten when a
package adds a user; shadow and gshadow are then written anew with every password locked), and
the image's logs and caches that apt and dpkg appended to (/var/log/dpkg.log, debconf's database).
Overlayfs's own attributes but whiteouts and opaque directories are removed, so that the layer is
a plain lower layer wherever it is used.

A layer is an entry of herd's image cache (`herd.host.imagecache`, kind `packages`), keyed by a
digest of everything it depends on: the image's dpkg status, users and groups, apt sources and
preferences, the directories overlaid, and the sorted list of packages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from herd.errors import ImageError
from herd.host import imagecache
from herd.host.hostimage import OVERLAID, SHARED_READ_ONLY, host_top_level
from herd.host.hostsnapshot import may_expose, packaged_conffiles, write_locked_shadow
from herd.host.idmap import entries_below

KIND = "packages"
FORMAT = b"packages 1"  # part of every key: a change to what a layer holds makes older ones stale
DPKG = "var/lib/dpkg"
# What of an image a layer depends on beyond its packages (relative to its root).
KEYED = ("etc/passwd", "etc/group", "etc/apt/sources.list", "etc/apt/preferences")
KEYED_DIRECTORIES = ("etc/apt/sources.list.d", "etc/apt/preferences.d")
# Under these, a file the image has that the installation rewrote is the image's state (its logs,
# its caches), never the layer's.
IMAGE_STATE = ("var/log", "var/cache")
POLICY_RC_D = "usr/sbin/policy-rc.d"
POLICY = "#!/bin/sh\n# herd: a package layer is built, no service starts\nexit 101\n"
SCRATCH = ".scratch"  # in the build directory, removed before the layer is complete
APT_ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
}
# Kept on a layer's files: what makes it a layer (whiteouts made as attributes, opaque directories).
OVERLAY_KEPT = frozenset({"trusted.overlay.opaque", "trusted.overlay.whiteout"})
_STATUS = re.compile(r"^(dlstatus|pmstatus|pmerror):(.*?):([0-9.]+):(.*)$")
# The build, inside its namespaces: overlays over the image's directories, the rest of a root
# around them, then apt in a chroot. Arguments: scratch, image root, layer, the directories, --,
# the command.
BUILD_SCRIPT = r"""
set -eu
scratch=$1 base=$2 layer=$3; shift 3
root=$scratch/root
while [ "$1" != -- ]; do
    mkdir -p "$scratch/work/$1"
    layers="lowerdir=$base/$1,upperdir=$layer/$1,workdir=$scratch/work/$1"
    mount -t overlay -o "$layers,redirect_dir=off,metacopy=off,index=off" herd-packages "$root/$1"
    shift
done
shift
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs -o mode=0755 herd-dev "$root/dev"
for node in null zero full random urandom tty; do
    : > "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
ln -s /proc/self/fd "$root/dev/fd"
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t tmpfs -o mode=1777 herd-tmp "$root/tmp"
mount -t tmpfs -o mode=0755 herd-run "$root/run"
mkdir -p "$scratch/apt/archives/partial" "$root/var/cache/apt"
mount --bind "$scratch/apt" "$root/var/cache/apt"
[ -e "$root/usr/sbin/policy-rc.d" ] || : > "$root/usr/sbin/policy-rc.d"
mount --bind "$scratch/policy-rc.d" "$root/usr/sbin/policy-rc.d"
if [ -L "$root/etc/resolv.conf" ]; then
    resolv=$(readlink "$root/etc/resolv.conf")
    case $resolv in /run/*)
        mkdir -p "$root${resolv%/*}"
        cat /etc/resolv.conf > "$root$resolv" ;;
    esac
elif [ -f "$root/etc/resolv.conf" ] && [ "$base" != / ]; then
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
fi
exec chroot "$root" "$@"
"""
TOOLS = ("apt-get", "dpkg", "unshare", "setpriv", "chroot")


@dataclass(frozen=True)
class Base:
    """What a layer is installed over: the image's `root` on the host ("/" for the host image),
    the top-level `directories` the build overlays (what lands anywhere else is not recorded),
    `name`, what messages call it, and `key`, what tells its content apart beyond what the layer's
    own key reads from it (empty for the host, whose packages are its dpkg status)."""

    root: str
    directories: tuple[str, ...]
    name: str
    key: str = ""


def host_base() -> Base:
    """The host image as a base: its directories that machines share or overlay."""
    directories = tuple(
        name for name, link in host_top_level() if link is None and name in (*SHARED_READ_ONLY, *OVERLAID)
    )
    return Base("/", directories, "host")


def host_problem() -> str | None:
    """Why layers of packages cannot be built over the host image here, or None."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"packages are installed with apt and dpkg, which need {', '.join(missing)} on the host"
    if not Path("/", DPKG, "status").is_file():
        return "packages are installed with apt and dpkg, and the host has no dpkg database"
    return None


def _keyed_files(root: Path) -> list[Path]:
    files = [root / relative for relative in (f"{DPKG}/status", *KEYED)]
    for relative in KEYED_DIRECTORIES:
        with contextlib.suppress(FileNotFoundError):
            files += sorted((root / relative).iterdir())
    return files


def layer_key(base: Base, packages: Iterable[str]) -> str:
    """The digest of everything a layer of `packages` over `base` depends on."""
    digest = hashlib.sha256(FORMAT)
    root = Path(base.root)
    for path in _keyed_files(root):
        try:
            content = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            content = b"(none)"
        digest.update(f"\0{path.relative_to(root)}\0{len(content)}\0".encode() + content)
    digest.update(repr((base.key, base.directories, sorted(packages))).encode())
    return digest.hexdigest()[:20]


def over_host(packages: Sequence[str], progress: Callable[[str], None]) -> Path:
    """The layer of `packages` over the host image, built if the cache lacks it."""
    return ensure(host_base(), packages, progress)


def ensure(base: Base, packages: Sequence[str], progress: Callable[[str], None]) -> Path:
    """The layer of `packages` over `base`: from the cache, else built (`build`) and cached. Its
    directories are those of `base` that the installation added to."""
    description = f"{', '.join(sorted(packages))} over {base.name}"
    return imagecache.ensure(
        KIND,
        layer_key(base, packages),
        description,
        lambda target: build(base, packages, target, progress),
        progress,
    )


def holds(layer: Path, name: str) -> bool:
    """Whether the layer has anything in its directory `name` (the top-level directory of the
    image it goes over)."""
    try:
        with os.scandir(layer / name) as entries:
            return any(True for _ in entries)
    except FileNotFoundError:
        return False


def build(base: Base, packages: Sequence[str], target: Path, progress: Callable[[str], None]) -> None:
    """Install `packages` over `base`, recording in `target` (an empty directory) what they add."""
    scratch = target / SCRATCH
    root = scratch / "root"
    root.mkdir(parents=True)
    for entry in sorted(os.scandir(base.root), key=lambda e: e.name):
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), root / entry.name)
    for name in ("proc", "sys", "dev", "tmp", "run", "root", *base.directories):
        (root / name).mkdir(exist_ok=True)
    for name in base.directories:
        (target / name).mkdir()
    (scratch / "policy-rc.d").write_text(POLICY)
    (scratch / "policy-rc.d").chmod(0o755)
    had_policy = os.path.lexists(os.path.join(base.root, POLICY_RC_D))
    progress(f"installing {', '.join(packages)} with apt")
    _run_apt(base, packages, target, scratch, progress)
    shutil.rmtree(scratch)
    if not had_policy:
        with contextlib.suppress(FileNotFoundError):
            (target / POLICY_RC_D).unlink()
    progress("taking out what the layer must not carry")
    _take_out_image_files(Path(base.root), target)
    _strip_overlay_attributes(target)


def _apt_argv(packages: Sequence[str], status: int) -> list[str]:
    return [
        "apt-get",
        "install",
        "--yes",
        "--quiet",
        "--no-install-recommends",
        "-o",
        f"APT::Status-Fd={status}",
        "-o",
        "Dpkg::Use-Pty=0",
        "-o",
        "DPkg::Options::=--force-confdef",
        "-o",
        "DPkg::Options::=--force-confold",
        *packages,
    ]


def _run_apt(
    base: Base, packages: Sequence[str], target: Path, scratch: Path, progress: Callable[[str], None]
) -> None:
    reading, writing = os.pipe()
    argv = [
        "setpriv",
        "--pdeathsig",
        "KILL",
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "sh",
        "-c",
        BUILD_SCRIPT,
        "herd-packages",
        str(scratch),
        base.root,
        str(target),
        *base.directories,
        "--",
        *_apt_argv(packages, writing),
    ]
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(writing,),
                env=APT_ENVIRONMENT,
                start_new_session=True,  # the terminal's Ctrl-C reaches herd, which ends the build
            )
        finally:
            os.close(writing)
        errors: list[str] = []
        try:
            _follow(reading, progress, errors)
            status = process.wait()
        finally:
            os.close(reading)
            if process.poll() is None:
                process.kill()  # its child, the PID namespace's first process, dies with it
                process.wait()
        if status != 0:
            output.seek(0)
            raise ImageError(_failure(packages, output.read().decode(errors="replace"), errors), "packages")


def _follow(status: int, progress: Callable[[str], None], errors: list[str]) -> None:
    """Report apt's status lines (downloads, each package's steps) until apt closes its end."""
    pending = b""
    while True:
        chunk = os.read(status, 65536)
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            found = _STATUS.match(line.decode(errors="replace").strip())
            if found is None:
                continue
            kind, _, percent, text = found.groups()
            if kind == "pmerror":
                errors.append(text)
            elif kind == "dlstatus":
                progress(f"downloading: {text.lower()} ({float(percent):.0f}%)")
            else:
                progress(f"{text} ({float(percent):.0f}%)")


def _failure(packages: Sequence[str], output: str, errors: list[str]) -> str:
    """apt's own words on why `packages` could not be installed."""
    said = [line for line in output.splitlines() if line.startswith(("E:", "W: Some index files"))]
    said += [f"E: {error}" for error in errors]
    if not said:
        said = output.strip().splitlines()[-10:]
    return f"apt-get install {' '.join(packages)} failed: " + "; ".join(line.strip() for line in said)


def _take_out_image_files(base: Path, layer: Path) -> None:
    """Remove from the layer the image's files the installation merely rewrote and that it must
    not carry: those machines may not see, and the image's logs and caches; write shadow and
    gshadow anew where the layer has users or groups of its own."""
    conffiles = packaged_conffiles(base / DPKG)
    for path, info in list(entries_below(str(layer))):
        relative = os.path.relpath(path, layer)
        original = base / relative
        if not stat.S_ISREG(info.st_mode) or not os.path.lexists(original):
            continue
        image_state = relative.startswith(tuple(f"{top}/" for top in IMAGE_STATE))
        if image_state or not may_expose(str(original), os.lstat(original), conffiles, f"/{relative}"):
            os.unlink(path)
    for top in IMAGE_STATE:  # the directories those files were in, where nothing else is left
        for directory, _, _ in os.walk(layer / top, topdown=False):
            if not os.listdir(directory) and (base / os.path.relpath(directory, layer)).is_dir():
                os.rmdir(directory)
    etc = layer / "etc"
    for name in ("shadow", "gshadow"):
        with contextlib.suppress(FileNotFoundError):
            (etc / name).unlink()
    if (etc / "passwd").exists() or (etc / "group").exists():
        for name in ("passwd", "group"):
            if not (etc / name).exists():
                shutil.copy2(base / "etc" / name, etc / name)
        write_locked_shadow(etc, 0)


def _strip_overlay_attributes(layer: Path) -> None:
    """Remove the attributes overlayfs set on copied-up files (their origin and the like), but
    whiteouts and opaque directories, which the layer needs wherever it is a lower layer."""
    for path, _ in entries_below(str(layer)):
        for name in os.listxattr(path, follow_symlinks=False):
            if name.startswith("trusted.overlay.") and name not in OVERLAY_KEPT:
                os.removexattr(path, name, follow_symlinks=False)
