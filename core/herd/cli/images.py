"""`herd images`: what herd's image cache holds, and `herd images prune`, which removes what no run uses."""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict

from herd.host import imagecache

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """Seconds from "90", "90s", "30m", "12h", "7d" or "2w" (argparse's type for --older-than)."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a number and an optional unit, s, m, h, d or w ('12h', '7d')"
        )
    return float(found[1]) * _SECONDS[found[2]]


def size(count: int) -> str:
    """Bytes as people read them: '812 KiB', '3.1 MiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def ago(moment: float) -> str:
    """How long ago `moment` (seconds since the epoch) was: '40 s ago', '3 h ago'."""
    seconds = max(0.0, time.time() - moment)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _data(entry: imagecache.Entry) -> dict[str, object]:
    return {**asdict(entry), "path": str(entry.path)}


def list_images(args: argparse.Namespace) -> int:
    entries = imagecache.entries()
    if args.json:
        print(json.dumps({"directory": str(imagecache.images_dir()), "entries": [_data(e) for e in entries]}))
        return 0
    if not entries:
        print(f"nothing cached in {imagecache.images_dir()}")
        return 0
    rows = [
        (e.kind, size(e.size), ago(e.last_use), "in use" if e.in_use else "", e.key, e.description)
        for e in entries
    ]
    header = ("KIND", "SIZE", "LAST USE", "", "KEY", "WHAT")
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(5)]
    for row in (header, *rows):
        print("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=False)) + "  " + row[5])
    total = sum(e.size for e in entries)
    print(f"{len(entries)} entries, {size(total)}, in {imagecache.images_dir()}")
    return 0


def prune(args: argparse.Namespace) -> int:
    removed = imagecache.prune(args.older_than)
    kept = [e for e in imagecache.entries() if e.in_use]
    if args.json:
        print(json.dumps({"removed": [_data(e) for e in removed], "in_use": [_data(e) for e in kept]}))
        return 0
    for entry in removed:
        print(f"removed {entry.kind} {entry.key} ({size(entry.size)}, last used {ago(entry.last_use)}): "
              f"{entry.description}")  # fmt: skip
    if not removed:
        print("nothing to remove")
    if kept:
        print(f"kept {len(kept)} in use by live runs")
    return 0
