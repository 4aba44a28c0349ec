"""The Docker engine herd talks to: where it is, the client, and what herd made in it.

The engine is the one the docker SDK reaches from the environment (`DOCKER_HOST`, else the local
socket). herd's machines need it on this host: they join herd's bridges by a veth moved into their
network namespace, their /etc and /var are overlays mounted here, and the command agent enters
them with setns(). Where the engine is remote is told from its address alone, before anything
connects, and starting a machine there fails with a message that says so.

Every container carries the label `herd.run=<run id>`, by which a run's containers are found and
removed after a crash (`herd_run_leftovers`, `herd_reap`). The SDK (and requests, which it
imports) costs about 0.1 s to import: it is imported on first use, not when herd loads the plugin.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pwd
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from herd.plugin import COUNT, HerdError

if TYPE_CHECKING:
    from docker import DockerClient

DEFAULT_HOST = "unix:///var/run/docker.sock"
RUN_LABEL = "herd.run"
MACHINE_LABEL = "herd.machine"
LOCAL_SCHEMES = ("unix", "http+unix")
NETWORK_SCHEMES = ("tcp", "http", "https")
DAEMON_CONFIG = "/etc/docker/daemon.json"
REMAP_OPTION = "--userns-remap"
DEFAULT_REMAP_USER = "dockremap"  # what dockerd makes and uses for `--userns-remap=default`

_lock = threading.Lock()


def engine_address() -> str:
    """The engine's address, as the docker SDK reads it from the environment."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def is_local(address: str) -> bool:
    """Whether the engine at `address` runs on this host: a Unix socket, or TCP on loopback."""
    parts = urlsplit(address)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    if parts.scheme not in NETWORK_SCHEMES or not parts.hostname:
        return False  # ssh://, npipe:// and the like reach another machine
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def remote_problem() -> str | None:
    """Why herd cannot run machines on the engine, or None when it is local."""
    address = engine_address()
    if is_local(address):
        return None
    return (
        f"the Docker engine at {address} (DOCKER_HOST) is not on this host: herd's Docker machines "
        "join herd's bridges, mount their /etc and /var and take commands on the host that runs "
        "them, so they need a local engine (unset DOCKER_HOST, or point it at this host's socket)"
    )


@cache
def _client(address: str) -> DockerClient:
    """A client made as the SDK makes it from the environment (TLS settings included), which
    names `address`."""
    import docker

    try:
        return docker.from_env()
    except docker.errors.DockerException as error:
        raise HerdError(f"cannot reach the Docker engine at {address}: {error}") from None


def client() -> DockerClient:
    """The client of the engine, made once per address and process; HerdError if unreachable."""
    with _lock:
        return _client(engine_address())


def reachable() -> bool:
    """Whether a local engine answers (without raising): a remote one is never asked, and where
    its socket is missing the SDK is not even imported."""
    address = engine_address()
    if not is_local(address):
        return False
    parts = urlsplit(address)
    if parts.scheme in LOCAL_SCHEMES and not os.path.exists(parts.path):
        return False
    import docker
    import requests

    try:
        client().ping()
    except (HerdError, docker.errors.DockerException, requests.RequestException, OSError):
        return False
    return True


def run_containers(run_id: str) -> list[tuple[str, str]]:
    """(name, short id) of every container, running or not, labelled with run `run_id`."""
    if not reachable():
        return []
    found = client().containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    # the SDK's name is None only for a sparse listing, which this is not
    return [(container.name or container.short_id, container.short_id) for container in found]


def remove_run_containers(run_id: str) -> list[str]:
    """Remove the run's containers, whatever their state; describe each one removed."""
    import docker

    removed = []
    for name, short_id in run_containers(run_id):
        try:
            client().api.remove_container(short_id, force=True, v=True)
        except docker.errors.NotFound:
            continue  # removed meanwhile
        removed.append(f"docker container {name} ({short_id})")
    return removed


def _daemon_arguments() -> list[str] | None:
    """The command line of this host's engine (a dockerd of host root's), None if none runs."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/comm") as comm:
                if comm.read().strip() != "dockerd" or entry.stat().st_uid != 0:
                    continue
            with open(f"{entry.path}/cmdline", "rb") as cmdline:
                return [
                    argument.decode(errors="replace") for argument in cmdline.read().split(b"\0") if argument
                ]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None


def _remap_setting(arguments: list[str]) -> str | None:
    """The engine's `userns-remap` setting, from its command line, else its configuration file."""
    config = DAEMON_CONFIG
    for index, argument in enumerate(arguments):
        name, equals, value = argument.partition("=")
        if not equals and index + 1 < len(arguments):
            value = arguments[index + 1]
        if name == REMAP_OPTION:
            return value or None
        if name == "--config-file":
            config = value
    try:
        with open(config) as handle:
            setting = json.load(handle).get("userns-remap")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return setting if isinstance(setting, str) and setting else None


def _subordinate_start(file: str, user: str) -> int | None:
    """Where the first range of subordinate ids of `user` (a name or a number) starts in `file`
    (/etc/subuid or /etc/subgid), if it holds the 65536 ids a machine needs."""
    try:
        lines = Path(file).read_text().splitlines()
    except FileNotFoundError:
        return None
    names = {user}
    with contextlib.suppress(KeyError):
        names.add(str(pwd.getpwnam(user).pw_uid) if not user.isdigit() else pwd.getpwuid(int(user)).pw_name)
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in names and fields[1].isdigit() and fields[2].isdigit():
            return int(fields[1]) if int(fields[2]) >= COUNT else None
    return None


@cache
def remapped_root() -> int | None:
    """The host id that root in the local engine's containers is, when the engine remaps them into
    a user namespace of their own (dockerd's `userns-remap`); None when it does not (their root
    is host root), or when the user and group ranges differ (herd shifts both alike).

    Read from the running engine's command line and configuration file, which costs nothing,
    where asking the engine costs importing its SDK in every herd command; each container's
    start checks it against the container's own id map (`herd_docker.container`)."""
    arguments = _daemon_arguments()
    setting = None if arguments is None or remote_problem() is not None else _remap_setting(arguments)
    if setting is None:
        return None
    user = setting.split(":")[0]
    user = DEFAULT_REMAP_USER if user == "default" else user
    start = _subordinate_start("/etc/subuid", user)
    return start if start is not None and start == _subordinate_start("/etc/subgid", user) else None
