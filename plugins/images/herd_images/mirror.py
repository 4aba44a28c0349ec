"""The Debian mirror this host installs its own packages from, read from its apt sources.

Debian images are built from that mirror and no other address: it is the one the host's
administrator chose (a proxy, a local mirror, a snapshot) and the one this host is known to reach.
It is the first `deb` source that lists the host's own release (its VERSION_CODENAME) among its
suites, in apt's order: `/etc/apt/sources.list`, then `/etc/apt/sources.list.d/` by name, one-line
`.list` files and deb822 `.sources` files alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from herd.plugin import HerdError

APT = Path("/etc/apt")
OS_RELEASE = (Path("/etc/os-release"), Path("/usr/lib/os-release"))


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool = True


def host_codename(candidates: tuple[Path, ...] = OS_RELEASE) -> str | None:
    for path in candidates:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "VERSION_CODENAME":
                return value.strip().strip("\"'") or None
    return None


def _one_line_sources(text: str) -> list[Source]:
    """`deb [options] URI SUITE COMPONENT...` lines."""
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        fields = line.split()[1:]
        if fields and fields[0].startswith("["):  # options, up to the field that ends with "]"
            while fields and not fields[0].endswith("]"):
                fields.pop(0)
            fields = fields[1:]
        if len(fields) >= 2:
            found.append(Source(fields[0], (fields[1],), tuple(fields[2:])))
    return found


def _deb822_sources(text: str) -> list[Source]:
    """Stanzas of `Types:`, `URIs:`, `Suites:`, `Components:` (and `Enabled:`), blank-line separated."""
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        enabled = fields.get("enabled", "yes").lower() not in ("no", "false", "0")
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        found += [Source(uri, suites, components, enabled) for uri in fields.get("uris", "").split()]
    return found


def host_sources(apt: Path = APT) -> list[Source]:
    """Every `deb` source of the host, in apt's order."""
    found: list[Source] = []
    main_list = apt / "sources.list"
    if main_list.is_file():
        found += _one_line_sources(main_list.read_text(errors="replace"))
    directory = apt / "sources.list.d"
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix == ".list":
                found += _one_line_sources(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                found += _deb822_sources(path.read_text(errors="replace"))
    return [source for source in found if source.enabled]


def debian_mirror(apt: Path = APT, os_release: tuple[Path, ...] = OS_RELEASE) -> str:
    """The URI of the mirror the host's own release comes from; HerdError where there is none."""
    codename = host_codename(os_release)
    if codename is None:
        raise HerdError(
            "Debian images are built from the host's Debian mirror, and this host says no release "
            "(no VERSION_CODENAME in /etc/os-release)"
        )
    for source in host_sources(apt):
        if codename in source.suites and source.uri.startswith(("http://", "https://", "file:/")):
            return source.uri.rstrip("/")
    raise HerdError(
        f"Debian images are built from the host's Debian mirror, and no source of {apt} "
        f"lists this host's release {codename!r}"
    )
