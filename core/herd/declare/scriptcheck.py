"""Checking a test's script before anything boots, as the NixOS test driver lints its scripts.

A typo in a script (`sever.succeed(...)`, `machine.succed(...)`) would otherwise surface only once
every machine has booted. Two checks run when the driver is made, before the run starts:

- a string script's undefined names, found by pyflakes with the script's own names
  (`herd.declare.spec.script_names`) as builtins;
- in a string script and in a function script whose source Python can read, every attribute read
  on a name that is a machine (and that the script never binds to something else) must be one of
  the `Machine` API's, which the caller passes (the run knows its `Machine`; declarations do not).

Each problem names the test, the script's line in its file and the name, with a "did you mean"
when one is close. `herd run --no-check` (`RunOptions.check=False`) skips both.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import textwrap
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from herd.declare.spec import SINGLE_MACHINE_NAME, script_names

if TYPE_CHECKING:
    from herd.declare.script import ScriptSource
    from herd.declare.spec import TestSpec

SKIP_HINT = "(`herd run --no-check` skips this check)"


def _suggestion(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the code binds itself: assignment and loop targets, parameters, imports, definitions."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
    return bound


def unknown_methods(
    tree: ast.AST, watched: set[str], known: frozenset[str]
) -> Iterator[tuple[int, str, str]]:
    """(line, name, attribute) for each attribute read on a `watched` name that is not `known`."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in watched
            and node.attr not in known
        ):
            yield node.lineno, node.value.id, node.attr


def _where(filename: str, line: int) -> str:
    if filename.startswith("<"):
        return f"line {line} of the script"
    relative = os.path.relpath(filename)
    return f"{filename if relative.startswith('..') else relative}:{line}"


def _method_problem(test: str, where: str, machine: str, attribute: str, api: frozenset[str]) -> str:
    public = {name for name in api if not name.startswith("_")}
    return (
        f"test {test!r}: {where}: machine {machine!r} has no method or attribute {attribute!r}"
        f"{_suggestion(attribute, public)} {SKIP_HINT}"
    )


def check_text(
    script: str, test: str, machines: set[str], filename: str, lines_before: int, *, api: frozenset[str]
) -> list[str]:
    """The problems of a string script (see the module's doc)."""
    from pyflakes import checker, messages

    try:
        tree = ast.parse(script)
    except SyntaxError:
        return []  # the declaration's validation reports it
    known = script_names(machines)
    problems: list[tuple[int, str]] = []
    for message in checker.Checker(tree, filename=filename, builtins=set(known)).messages:
        if isinstance(message, messages.UndefinedName | messages.UndefinedLocal):
            (name, *_rest) = message.message_args
            line = message.lineno + lines_before
            hint = (
                f"; {SINGLE_MACHINE_NAME!r} is the machine of a test of one machine only"
                if name == SINGLE_MACHINE_NAME
                else _suggestion(name, known)
            )
            where = _where(filename, line)
            problems.append((line, f"test {test!r}: {where}: name {name!r} is not defined{hint} {SKIP_HINT}"))
    # A name the script binds itself may hold anything: it is left alone.
    watched = _machine_names(machines) - _bound_names(tree)
    for lineno, machine, attribute in unknown_methods(tree, watched, api):
        line = lineno + lines_before
        problems.append((line, _method_problem(test, _where(filename, line), machine, attribute, api)))
    return [message for _line, message in sorted(problems)]


def check_function(
    script: Callable[..., Any], test: str, machines: set[str], api: frozenset[str]
) -> list[str]:
    """The unknown machine attributes of a function script, when Python can read its source."""
    try:
        lines, first_line = inspect.getsourcelines(script)
        filename = inspect.getsourcefile(script) or "<script>"
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return []  # a lambda on a line with others, a function made at run time: not checked
    parameters = set(inspect.signature(script).parameters)
    body = ast.Module(body=getattr(tree.body[0], "body", []), type_ignores=[])
    # The machines it takes as parameters, unless its body binds them to something else.
    watched = (_machine_names(machines) & parameters) - _bound_names(body)
    return [
        _method_problem(test, _where(filename, lineno + first_line - 1), machine, attribute, api)
        for lineno, machine, attribute in unknown_methods(body, watched, api)
    ]


def _machine_names(machines: set[str]) -> set[str]:
    """The names under which a script sees machines: theirs, and `machine` in a test of one."""
    return machines | ({SINGLE_MACHINE_NAME} if len(machines) == 1 else set())


def check(spec: TestSpec, source: ScriptSource, api: frozenset[str]) -> list[str]:
    """Every problem of the test's script that the checks find, or []; `api` holds every attribute
    a script may read on a machine."""
    from herd.declare.script import script_place

    machines = {m.script_name for m in spec.machines}
    if isinstance(spec.script, str):
        filename, lines_before = script_place(spec.script, spec.name, source)
        return check_text(spec.script, spec.name, machines, filename, lines_before, api=api)
    if callable(spec.script):
        return check_function(spec.script, spec.name, machines, api)
    return []
