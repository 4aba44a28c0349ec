"""herd's side of libvirt: connections by URI, domain lifecycle events, and a run's domains.

libvirt-python is imported only here, and only when a libvirt machine, a host check or the reaper
needs it: the `qemu` backend works without it. One connection per URI and process, opened after
libvirt's default event loop is registered and run in a thread of its own: lifecycle events then
come over the connection itself (no D-Bus involved), and libvirt keeps the connection alive.

Domains are created with VIR_DOMAIN_START_AUTODESTROY: libvirtd destroys them as soon as the
connection that made them closes, so a herd process killed with SIGKILL takes its VMs with it.
The reaper (`reap`) is the second line: it destroys whatever domain still names a dead run in its
metadata, on the default URI and on every URI the run recorded in its state directory.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from herd.plugin import HerdError, state_root
from herd_qemu import domainxml

if TYPE_CHECKING:
    import libvirt as libvirt_module

DEFAULT_URI = "qemu:///system"
URI_FILE = "libvirt.uri"  # in a machine's state directory: where its domain runs, for the reaper
INSTALL = (
    "pip install 'herd-qemu[libvirt]' (it builds against libvirt: apt-get install libvirt-dev "
    "pkg-config gcc python3-dev)"
)
START_LIBVIRTD = (
    "apt-get install libvirt-daemon-system, then start it: systemctl start libvirtd, or where systemd "
    "is not PID 1, virtlogd -d && libvirtd -d (herd's plugins/qemu/start-libvirtd.sh)"
)

_connections_lock = threading.Lock()  # held while a connection opens, which may take a while
_connections: dict[str, libvirt_module.virConnect] = {}


@cache
def module() -> ModuleType:
    """libvirt-python, with its default error printer silenced (herd raises what it needs) and its
    event loop running; HerdError when it is not installed."""
    try:
        import libvirt
    except ImportError:
        raise HerdError(f"the qemu-libvirt backend needs libvirt-python: {INSTALL}") from None
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    libvirt.virEventRegisterDefaultImpl()
    threading.Thread(target=_run_events, args=(libvirt,), name="herd-libvirt-events", daemon=True).start()
    loaded: ModuleType = libvirt
    return loaded


def _run_events(libvirt: ModuleType) -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def is_local(uri: str) -> bool:
    """Whether the URI names the hypervisor of this host (no host name in it)."""
    return urlsplit(uri).hostname in (None, "", "localhost")


def uri_problem(uri: object) -> str | None:
    """What is wrong with a URI given as a machine option, before anything is tried."""
    if not isinstance(uri, str) or "://" not in uri:
        return f"uri must be a libvirt URI such as {DEFAULT_URI} or qemu+ssh://host/system, got {uri!r}"
    return None


def connect(uri: str) -> libvirt_module.virConnect:
    """This process's connection to `uri`, opened (or reopened, if it broke) now if need be.
    Raises HerdError naming the URI when libvirt does not answer there."""
    libvirt = module()
    with _connections_lock:
        connection = _connections.get(uri)
        if connection is not None and connection.isAlive():
            return connection
        try:
            connection = libvirt.open(uri)
        except libvirt.libvirtError as error:
            fix = f"; {START_LIBVIRTD}" if is_local(uri) else ""
            raise HerdError(f"cannot reach libvirt at {uri}: {error.get_error_message()}{fix}") from None
        connection.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, _lifecycle, None)
        _connections[uri] = connection
        return connection


def is_gone(error: Exception) -> bool:
    """Whether a libvirt error says the domain does not exist (any more) or is not running."""
    libvirt = module()
    return isinstance(error, libvirt.libvirtError) and error.get_error_code() in (
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_OPERATION_INVALID,
    )


# -- lifecycle -----------------------------------------------------------------------------------


@dataclass
class Watch:
    """Whether a domain has stopped, and how; set from libvirt's lifecycle events."""

    stopped: threading.Event = field(default_factory=threading.Event)
    how: str = ""

    def stop(self, how: str) -> None:
        if not self.stopped.is_set():
            self.how = how
            self.stopped.set()


_watches_lock = threading.Lock()
_watches: dict[str, Watch] = {}


def watch(uuid: str) -> Watch:
    """Start watching the domain that will have `uuid` (before it exists: no event is missed)."""
    with _watches_lock:
        return _watches.setdefault(uuid, Watch())


def unwatch(uuid: str) -> None:
    with _watches_lock:
        _watches.pop(uuid, None)


def _stop_reasons(libvirt: ModuleType) -> dict[int, str]:
    return {
        libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "the guest powered off",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "its domain was destroyed",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "the guest crashed",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "QEMU ended unexpectedly",
    }


def _lifecycle(_connection: Any, domain: Any, event: int, detail: int, _opaque: Any) -> None:
    """libvirt's lifecycle callback (in the event thread): mark a watched domain stopped."""
    libvirt = module()
    if event != libvirt.VIR_DOMAIN_EVENT_STOPPED:
        return
    with _watches_lock:
        found = _watches.get(domain.UUIDString())
    if found is not None:
        reason = _stop_reasons(libvirt).get(detail, f"its domain stopped (libvirt's reason {detail})")
        found.stop(f"{reason} (libvirt domain {domain.name()})")


# -- a run's domains -----------------------------------------------------------------------------


def run_uris(run_id: str) -> list[str]:
    """The URIs where run `run_id` may have domains: the default one and those it recorded."""
    uris = [DEFAULT_URI]
    for recorded in sorted((state_root() / run_id / "machines").glob(f"*/{URI_FILE}")):
        with contextlib.suppress(OSError):
            uri = recorded.read_text().strip()
            if uri not in uris:
                uris.append(uri)
    return uris


def _reachable(uri: str) -> libvirt_module.virConnect | None:
    """The connection to `uri`, or None where libvirt is not installed or, on this host, not
    running (nothing of a run can be left there then: the reaper kills its processes). A remote
    URI that does not answer raises, so that the run is kept for a later `herd clean`."""
    try:
        return connect(uri)
    except HerdError:
        if is_local(uri):
            return None
        raise


def run_domains(run_id: str, uri: str) -> list[Any]:
    """The domains at `uri` whose herd metadata names run `run_id`."""
    connection = _reachable(uri)
    if connection is None:
        return []
    libvirt = module()
    found = []
    for domain in connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            element = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domainxml.NAMESPACE, 0)
        except libvirt.libvirtError:
            continue  # not herd's, or gone meanwhile
        tagged = domainxml.metadata_of(element)
        if tagged is not None and tagged[0] == run_id:
            found.append(domain)
    return found


def leftovers(run_id: str) -> list[str]:
    """One description per domain of run `run_id` that still exists, wherever it was made."""
    found = []
    for uri in run_uris(run_id):
        with contextlib.suppress(HerdError):
            found += [f"libvirt domain {domain.name()} ({uri})" for domain in run_domains(run_id, uri)]
    return found


def reap(run_id: str) -> list[str]:
    """Destroy the domains of the dead run `run_id`; describe each one destroyed."""
    removed = []
    for uri in run_uris(run_id):
        for domain in run_domains(run_id, uri):
            name = domain.name()
            try:
                domain.destroy()
            except Exception as error:
                if is_gone(error):
                    continue  # it ended by itself meanwhile
                raise HerdError(f"cannot destroy libvirt domain {name} at {uri}: {error}") from None
            removed.append(f"libvirt domain {name} ({uri})")
    return removed


@cache
def installed() -> bool:
    """Whether libvirt-python can be imported here."""
    try:
        module()
    except HerdError:
        return False
    return True


def describe(uri: str) -> str:
    """A few words on the hypervisor behind `uri` (versions), for `herd doctor`."""
    connection = connect(uri)

    def version(number: int) -> str:
        return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"

    return (
        f"{uri} answers: libvirt {version(connection.getLibVersion())}, "
        f"{connection.getType()} {version(connection.getVersion())}"
    )


LOGS = Path("/var/log/libvirt/qemu")


def log_files(name: str) -> tuple[Path, Path]:
    """Where a local libvirtd keeps the logs of domain `name`: QEMU's (its command line and
    stderr), then that of the file server of the domain's one filesystem (`fs0`)."""
    return LOGS / f"{name}.log", LOGS / f"{name}-fs0-virtiofsd.log"
