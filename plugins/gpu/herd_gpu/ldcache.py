"""The dynamic linker's cache (/etc/ld.so.cache): which file each library name resolves to.

The NVIDIA container toolkit finds the driver's libraries this way rather than by running
`ldconfig -p`, and so does herd: the cache may belong to another root (a driver container's), and
reading it costs no process. The format is glibc's `cache_file_new` (`glibc-ld.so.cache1.1`),
alone or after the old libc5 table that older glibc versions wrote first.
"""

from __future__ import annotations

import platform
import struct
from pathlib import Path

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
NEW_HEADER = struct.Struct("=20sII4xI12x")  # magic and version, nlibs, len_strings, extension offset
NEW_ENTRY = struct.Struct("=iIIIQ")  # flags, key, value, osversion, hwcap
OLD_ENTRY_SIZE = 12
FLAG_TYPE_MASK = 0x00FF
FLAG_ELF_LIBC6 = 0x0003
FLAG_ARCH_MASK = 0xFF00
ARCH_FLAGS = {"x86_64": 0x0300, "aarch64": 0x0A00}  # FLAG_X8664_LIB64, FLAG_AARCH64_LIB64


class CacheError(Exception):
    """The file is not a linker cache herd can read."""


def _string(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode(errors="surrogateescape")


def _new_table(data: bytes) -> int:
    """Where the new-format table starts: at 0, or after the old table, 8-byte aligned."""
    if data.startswith(NEW_MAGIC):
        return 0
    if not data.startswith(OLD_MAGIC):
        raise CacheError("not a linker cache (no glibc-ld.so.cache1.1 header)")
    count: int = struct.unpack_from("=I", data, 12)[0]
    start = 16 + count * OLD_ENTRY_SIZE
    start += -start % 8
    if not data.startswith(NEW_MAGIC, start):
        raise CacheError("an old-format (libc5) linker cache: herd reads glibc's new format")
    return start


def entries(path: Path) -> list[tuple[str, str]]:
    """(library name, path) of every 64-bit glibc library of this machine's architecture."""
    data = path.read_bytes()
    start = _new_table(data)
    _, count, _, _ = NEW_HEADER.unpack_from(data, start)
    wanted = ARCH_FLAGS.get(platform.machine())
    found = []
    for index in range(count):
        flags, key, value, _, _ = NEW_ENTRY.unpack_from(
            data, start + NEW_HEADER.size + index * NEW_ENTRY.size
        )
        if flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6:
            continue
        if wanted is not None and flags & FLAG_ARCH_MASK != wanted:
            continue
        found.append((_string(data, start + key), _string(data, start + value)))
    return found
