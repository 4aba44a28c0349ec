"""Id-mapped views of image layers, for the confined machines of one run.

A layer owned by host ids (an image's own files: root's are host id 0) cannot be a lower layer of
a confined machine's overlay as it is: the machine's root is another host id (`herd.host.idmap`).
An id-mapped mount of it can: overlayfs takes id-mapped lower layers, and the machine sees the
layer's files as its own root's, uncopied. Each view is mounted once per run and id shift, below
the run's state directory, and goes with it at teardown (`RunDir.remove` unmounts everything
there, and the reaper does after a crash).
"""

from __future__ import annotations

import threading
from pathlib import Path

from herd.errors import HerdError
from herd.hooks.types import Layer
from herd.host.idmap import mount_idmapped


class ImageViews:
    """The views of one run, mounted below `directory` (in the run's state directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._views: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def path(self, layer: Layer, shift: int) -> str:
        """Where a machine whose root is host id `shift` finds `layer` owned as it sees it."""
        if layer.id_shift == shift:
            return layer.path
        if layer.id_shift != 0:
            raise HerdError(
                f"the image layer {layer.path} was made for machines whose root is host id "
                f"{layer.id_shift}, not {shift}"
            )
        with self._lock:
            view = self._views.get((layer.path, shift))
            if view is None:
                point = self.directory / str(len(self._views))
                point.mkdir(parents=True)
                try:
                    mount_idmapped(layer.path, point, shift)
                except OSError as error:
                    raise HerdError(f"cannot mount an id-mapped view of {layer.path}: {error}") from None
                view = self._views[(layer.path, shift)] = str(point)
            return view
