"""`herd.testing.machines`: machines as a pytest fixture of any scope.

    @herd.testing.machines({"server": {"units": {"web.service": WEB}}, "client": {}}, scope="module")
    def web(machines):
        \"\"\"A web server and a client; the server serves when a test starts.\"\"\"
        machines.start_all()
        machines.server.wait_for_open_port(80)

    def test_fetch(web):
        web.client.succeed("curl -sf http://server")

The decorated function becomes a fixture of its name (or `name`), with its docstring, as under
`@pytest.fixture`: its value is the run's machines (a `Herd`), opened when the first test of the
scope asks for it and torn down when the scope ends. The function runs once the run is open, with
the machines as its first argument and the fixtures it names after that; it sets the machines up
and returns nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import pytest

from herd.testing.pytestrun import Declaration, Herd, fixture_output_dir, opened_run, path_name, run_name

Scope = Literal["session", "package", "module", "class", "function"]


def machines(
    machines: Mapping[str, Mapping[str, Any]],
    *,
    networks: Mapping[str, Mapping[str, Any]] | None = None,
    scope: Scope = "function",
    timeout: float | None = None,
    requires: str | Iterable[str] = (),
    name: str | None = None,
) -> Callable[[Callable[..., object]], Any]:
    """Make the decorated function a fixture whose value is a run of `machines`.

    `machines`, `networks`, `timeout` (each test body's limit, in seconds) and `requires`
    (capabilities) are the `herd` marker's; `scope` and `name` are `pytest.fixture`'s. The run is
    named after the fixture and its scope's node (`test_web.py-web`); its output goes to the
    `herd_output_dir` setting's directory under that name (with the pytest-xdist worker's id where
    there is one), else to a directory of pytest's temporary ones.
    """
    declaration = Declaration(machines, networks, timeout, requires)

    def decorate(setup: Callable[..., object]) -> Any:
        if inspect.isgeneratorfunction(setup):
            raise TypeError(
                f"herd.testing.machines: {setup.__name__} yields; the run's teardown is herd's: "
                "write a fixture of your own that uses this one"
            )
        parameters = list(inspect.signature(setup).parameters.values())
        if not parameters:
            raise TypeError(
                f"herd.testing.machines: {setup.__name__} takes no argument; its first one is the machines"
            )
        others = [parameter for parameter in parameters[1:] if parameter.name != "request"]
        wants_request = len(others) < len(parameters) - 1

        def fixture(request: pytest.FixtureRequest, **values: Any) -> Iterator[Herd]:
            if wants_request:
                values["request"] = request
            fixture_name = request.fixturename or setup.__name__
            place = path_name(f"{request.node.nodeid}::{fixture_name}")
            output_dir = fixture_output_dir(request, place)
            with opened_run(request, run_name(place), declaration, output_dir) as run:
                returned = setup(run, **values)
                if returned is not None:
                    raise TypeError(
                        f"{setup.__name__} returned {returned!r}: a herd.testing.machines function "
                        "sets the machines up and returns nothing; the fixture's value is the machines"
                    )
                yield run

        # Named and placed as the decorated function, as `pytest --fixtures` shows it; the
        # signature (set last) is the fixture's own, without the machines.
        functools.update_wrapper(
            fixture, setup, assigned=("__module__", "__name__", "__qualname__"), updated=()
        )
        request_parameter = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        fixture.__signature__ = inspect.Signature([request_parameter, *others])  # type: ignore[attr-defined]
        fixture.__doc__ = setup.__doc__ or f"herd machines: {', '.join(map(str, machines))}."
        return pytest.fixture(scope=scope, name=name)(fixture)

    return decorate
