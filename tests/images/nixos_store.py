"""A synthetic NixOS system in the host's /nix/store, for the boot path of `{"nixos": ...}` images.

These machines cannot build NixOS closures (no binary cache), so the tests lay out in the store what
herd relies on in one: a system directory whose `init` is what a NixOS system's stage 2 is (it
lays the system out, as NixOS's activation does, then execs systemd), `etc/` as the system's
static /etc, and the store paths it refers to. Its systemd is Debian's, from a Debian root of
herd's cache, hard-linked into a store path of its own; its shell is the host's static busybox.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

STORE = Path("/nix/store")
BUSYBOX = Path("/bin/busybox")
MARKER = "herd-synthetic-nixos"


def _store_path(name: str, salt: str) -> Path:
    digest = hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"  # Nix's base32
    return STORE / ("".join(alphabet[int(c, 16) * 2 % 32] for c in digest[:32]) + f"-{name}")


# NixOS's stage 2, in short: the kernel's file systems are mounted where nothing mounted them yet
# (a VM's initramfs hands over without them, a container has them), the system's files are laid
# out (each file of its /etc, as NixOS's setup-etc links them), what herd placed in /etc is
# kept, then systemd is exec'ed with the arguments init got.
INIT = """#!{busybox} sh
bb={busybox}
[ -c /dev/null ] || $bb mount -t devtmpfs devtmpfs /dev
[ -e /proc/self ] || $bb mount -t proc proc /proc
exec >/dev/console 2>&1
for top in usr bin sbin lib lib64; do
    [ -d /$top ] && [ ! -L /$top ] && $bb rmdir /$top
done
$bb ln -sfn {base}/usr /usr
for top in bin sbin lib lib64; do $bb ln -sfn usr/$top /$top; done
cd {system}/etc
for file in $($bb find . ! -type d); do
    [ -e "/etc/$file" ] || [ -L "/etc/$file" ] && continue
    $bb mkdir -p "/etc/${{file%/*}}" && $bb cp -a "$file" "/etc/$file"
done
cd /
echo "{marker}: activated {system}"
exec /usr/lib/systemd/systemd "$@"
"""


@dataclass(frozen=True)
class SyntheticSystem:
    system: Path
    paths: tuple[Path, ...]  # every store path it made, the system among them

    def remove(self) -> None:
        for path in self.paths:
            shutil.rmtree(path, ignore_errors=True)


def make(debian_root: Path, salt: str) -> SyntheticSystem:
    """The system, its store paths made from `debian_root` (hard links: nothing copied)."""
    busybox = _store_path("busybox-1.36.1", salt)
    base = _store_path("herd-test-debian-base", salt)
    system = _store_path("nixos-system-herd-test-25.05", salt)
    made = (busybox, base, system)
    try:
        (busybox / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, busybox / "bin" / "busybox")
        base.mkdir()
        subprocess.run(["cp", "-al", str(debian_root / "usr"), str(base / "usr")], check=True)
        system.mkdir()
        subprocess.run(["cp", "-a", str(debian_root / "etc"), str(system / "etc")], check=True)
        for enabled in (system / "etc" / "systemd" / "system").glob("*.wants"):
            shutil.rmtree(enabled)  # a NixOS system enables what its configuration says: here nothing
        (system / "nixos-version").write_text("25.05.herd-synthetic\n")
        init = system / "init"
        init.write_text(
            INIT.format(busybox=busybox / "bin" / "busybox", base=base, system=system, marker=MARKER)
        )
        os.chmod(init, 0o755)
    except BaseException:
        SyntheticSystem(system, made).remove()
        raise
    return SyntheticSystem(system, made)
