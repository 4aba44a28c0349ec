"""`herd.Test`: the declaration a user writes, validated as soon as it is made."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herd.declare.script import ScriptSource

if TYPE_CHECKING:
    from herd.run.driver import Outcome
from herd.declare.spec import parse_test
from herd.errors import SpecError


class Test:
    """A test: machines, the networks between them, and a script that drives them.

    Example::

        test = herd.Test(
            name="ping",
            machines={"machine1": {}, "machine2": {}},
            script='''
        start_all()
        machine1.succeed("ping -c 1 machine2")
        ''',
        )

    `machines` maps each machine's name to its fields, all optional: those of
    `herd.declare.spec.MachineSpec` (backend, image, services, units, files, devices, limits, NICs,
    port forwards, backend options...), each explained in the how-to guide on machines.
    `networks` declares the test's networks (see `herd.declare.netspec`); without it every machine is on
    the network `default`. `script` is Python source run with
    the machines and the driver's names in scope, or a function whose parameters name them.
    `timeout` bounds the whole run in seconds.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        name: str,
        machines: Mapping[str, Mapping[str, Any]],
        script: str | Callable[..., Any],
        timeout: float | None = None,
        networks: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if script is None:
            raise SpecError([f"test {name!r}: the test needs a script (a string or a function)"])
        self.spec = parse_test(name, machines, script, timeout, networks)
        caller = sys._getframe(1)
        filename = caller.f_code.co_filename
        path = str(Path(filename).resolve()) if not filename.startswith("<") else None
        self.source = ScriptSource(path, caller.f_lineno)

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<herd.Test {self.name}: {', '.join(m.name for m in self.spec.machines)}>"

    def run(self, **options: Any) -> Outcome:
        """Run this test now and return its `herd.run.driver.Outcome`.

        Options are those of `herd.run.driver.RunOptions`: backend, output_dir, keep, verbose,
        stop_timeout, terminal.
        """
        from herd.run.driver import Driver, RunOptions

        return Driver(self.spec, self.source, RunOptions(**options)).run()
