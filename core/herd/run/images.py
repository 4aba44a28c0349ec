"""What each machine of a run boots: its image and packages, checked before the run and resolved
by the image providers before any machine boots.

An image provider is a plugin (`herd_image_kinds`, `herd_image_check`, `herd_image_resolve`); the
core's own, `herd.host.hostprovider`, provides the `host` image and is registered with every run's
plugins. Plugins of `herd.plugins` load only when a machine names another kind. A machine whose
image no provider knows, whose image or packages its provider finds wrong, or whose backend does
not boot that kind of image (`BackendInfo.images`), fails the test before anything starts; an image
that cannot be built fails it before any machine boots. Either way the error names the test, the
machine and the field.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from herd.declare.spec import HOST_IMAGE, MachineSpec
from herd.errors import HerdError, ImageError, SpecError
from herd.hooks.manager import PLUGINS_GROUP, Plugins
from herd.host import hostprovider

if TYPE_CHECKING:
    from herd.declare.spec import TestSpec
    from herd.hooks.types import BackendInfo, ImageRoot
    from herd.report.log import RunLog

HEARTBEAT = 10.0  # seconds a build may go without a word before the log says it still runs
TERMINAL_EVERY = 2.0  # seconds between a build's steps on the terminal (the log has every step)


def with_image_providers(plugins: Plugins, spec: TestSpec) -> Plugins:
    """`plugins`, with the core's host image provider, and the plugins of `herd.plugins` when a
    machine's image is of another kind."""
    plugins.register(hostprovider, "herd:host-image")
    if any(machine.image_kind != HOST_IMAGE for machine in spec.machines):
        plugins.load(PLUGINS_GROUP)
    return plugins


def _offered(plugins: Plugins) -> list[tuple[str, str]]:
    offers: list[tuple[str, str]] = []
    plugins.hook.herd_image_kinds(offer=lambda kind, about: offers.append((kind, about)))
    return offers


def check_images(spec: TestSpec, plugins: Plugins, backends: Mapping[str, BackendInfo]) -> None:
    """Check every machine's image and packages, and that its backend boots that kind of image;
    raise `SpecError` listing every problem."""
    with_image_providers(plugins, spec)
    problems: list[str] = []
    for machine in spec.machines:
        where = f"test {spec.name!r}, machine {machine.name!r}"
        kind = machine.image_kind
        answer = plugins.hook.herd_image_check(machine=machine, kind=kind)
        if answer is None:
            offered = "; ".join(f"{kind!r}: {about}" for kind, about in _offered(plugins))
            problems.append(
                f"{where}, field 'image': no installed plugin provides images of kind {kind!r} "
                f"(installed image providers: {offered}; see `herd plugins`)"
            )
            continue
        problems += [f"{where}, field {field!r}: {message}" for field, message in answer]
        info = backends[machine.name]
        if kind not in info.images:
            others = ", ".join(plugins.backends_booting(kind)) or "none installed"
            problems.append(
                f"{where}, field 'image': backend {info.name!r} cannot boot images of kind {kind!r} "
                f"(it boots {', '.join(sorted(info.images))}; backends that boot {kind!r}: {others})"
            )
    if problems:
        raise SpecError(problems)


def label(machine: MachineSpec) -> str:
    """How the log names a machine's image and packages before they are resolved."""
    image = machine.image if isinstance(machine.image, str) else ":".join(map(str, *machine.image.items()))
    return f"{image} + {', '.join(machine.packages)}" if machine.packages else image


class _Progress:
    """A build's steps in the run's log, each with the time since the build began: log.txt gets
    every one; the terminal gets the first at once and then the latest every `TERMINAL_EVERY`
    seconds when it changed; while a step lasts, both get it again every `HEARTBEAT` seconds, so
    that a build never goes a minute without a word. A provider that finds everything in its
    cache reports nothing, and nothing is logged."""

    def __init__(self, log: RunLog, name: str) -> None:
        self.log = log
        self.name = name
        self.started = time.monotonic()
        self._step = ""
        self._shown = ""  # the step the terminal shows
        self._said = 0.0  # when a line last went to both
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    @property
    def reported(self) -> bool:
        return self._ticker is not None

    def _line(self, step: str) -> str:
        return f"image {self.name}: {step} · {time.monotonic() - self.started:.0f} s"

    def __call__(self, step: str) -> None:
        with self._lock:
            self._step = step
            self._said = time.monotonic()
            first = self._ticker is None
            if first:
                self._shown = step
                self._ticker = threading.Thread(target=self._tick, name="herd-image", daemon=True)
                self._ticker.start()
        self.log.info(self._line(step), show=first)

    def _tick(self) -> None:
        while not self._done.wait(TERMINAL_EVERY):
            with self._lock:
                step, changed = self._step, self._step != self._shown
                quiet = time.monotonic() - self._said >= HEARTBEAT
                self._shown = step
                if quiet:
                    self._said = time.monotonic()
            if quiet:
                self.log.info(self._line(f"{step} (still at it)"))
            elif changed:
                self.log.terminal_line(self._line(step))

    def close(self) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()


def _request(machine: MachineSpec, shift: int) -> tuple[Any, ...]:
    """What tells two machines' images apart: machines that ask the same share one resolution."""
    image = machine.image if isinstance(machine.image, str) else tuple(sorted(machine.image.items()))
    return (image, tuple(sorted(machine.packages)), shift)


def resolve_images(
    spec: TestSpec, plugins: Plugins, backends: Mapping[str, BackendInfo], log: RunLog
) -> dict[str, ImageRoot]:
    """Each machine's image root (`herd_image_resolve`), one resolution per distinct image,
    packages and id shift, one after the other (a Ctrl-C reaches the build under way). Raises
    `SpecError` naming the test, the machines and the field when an image cannot be had."""
    with_image_providers(plugins, spec)
    resolved: dict[tuple[Any, ...], ImageRoot] = {}
    images: dict[str, ImageRoot] = {}
    problems: list[str] = []
    failed: dict[tuple[Any, ...], HerdError] = {}
    for machine in spec.machines:
        shift = backends[machine.name].id_shift
        request = _request(machine, shift)
        if request not in resolved and request not in failed:
            try:
                resolved[request] = _resolve(machine, shift, plugins, log)
            except HerdError as error:
                failed[request] = error
        if request in failed:
            failure = failed[request]
            field = failure.field if isinstance(failure, ImageError) else "image"
            problems.append(f"test {spec.name!r}, machine {machine.name!r}, field {field!r}: {failure}")
        else:
            images[machine.name] = resolved[request]
    if problems:
        raise SpecError(problems)
    return images


def _resolve(machine: MachineSpec, shift: int, plugins: Plugins, log: RunLog) -> ImageRoot:
    progress = _Progress(log, label(machine))
    try:
        root: ImageRoot | None = plugins.hook.herd_image_resolve(
            machine=machine, kind=machine.image_kind, id_shift=shift, progress=progress
        )
    finally:
        progress.close()
    if root is None:
        raise HerdError(f"no installed plugin resolved the image {label(machine)!r}")
    if progress.reported:
        log.info(f"image {root.description}: ready in {time.monotonic() - progress.started:.1f} s")
    return root
