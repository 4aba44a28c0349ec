"""`herd shell [RUN] MACHINE [-- COMMAND ...]`: a login shell (or one command) in a machine of a
live run, from any terminal; the command's exit status is herd's.

The words after `--` are joined with spaces and run by the machine's login shell (`bash -lc`), as
ssh runs its command. RUN may be left out where one live run alone has a machine of that name.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from herd.cli.liveruns import connect, describe, live_run_ids
from herd.command.terminal import attach, terminal_size
from herd.errors import ArgumentError, HerdError


def parse_target(words: list[str]) -> tuple[str | None, str, str | None]:
    """RUN (or None), MACHINE and the command (or None) of `herd shell`'s words."""
    command = None
    if "--" in words:
        split = words.index("--")
        words, command = words[:split], " ".join(words[split + 1 :])
        if not command:
            raise ArgumentError("herd shell: no command after --")
    if len(words) == 1:
        return None, words[0], command
    if len(words) == 2:
        return words[0], words[1], command
    raise ArgumentError("usage: herd shell [RUN] MACHINE [-- COMMAND ...]")


def choose_run(run_id: str | None, machine: str) -> str:
    """The run named, or else the only live run with a machine of that name; a one-line error
    naming the live runs otherwise."""
    runs = {run: describe(run) for run in live_run_ids()}
    named = ", ".join(f"{run} ({about.get('test', about.get('state'))})" for run, about in runs.items())
    if run_id is not None:
        if run_id not in runs:
            raise HerdError(f"no live run {run_id!r} on this host; live runs: {named or 'none'}")
        return run_id
    having = [run for run, about in runs.items() if _has_machine(about, machine)]
    if len(having) == 1:
        return having[0]
    if not having:
        raise HerdError(f"no live run has a machine {machine!r}; live runs: {named or 'none'}")
    raise HerdError(f"name the run: {len(having)} live runs have a machine {machine!r}: {named}")


def _has_machine(about: dict[str, object], machine: str) -> bool:
    machines = about.get("machines", [])
    return isinstance(machines, list) and any(m["name"] == machine for m in machines)


def _exit_on_signal(number: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + number)  # the terminal is restored on the way out


def shell(args: argparse.Namespace) -> int:
    try:
        run_id, machine, command = parse_target(args.where)
        stream = connect(choose_run(run_id, machine))
    except HerdError as error:
        print(f"herd: {error}", file=sys.stderr)
        return 2 if isinstance(error, ArgumentError) else 1
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _exit_on_signal)
    rows, cols = terminal_size(0)
    with stream.socket:
        term = os.environ.get("TERM", "dumb")
        stream.send({"open": machine, "command": command, "term": term, "rows": rows, "cols": cols})
        answer = stream.receive()
        if answer is None or "error" in answer[0]:
            why = answer[0]["error"] if answer is not None else "the run ended"
            print(f"herd: {why}", file=sys.stderr)
            return 1
        try:
            return attach(stream)
        except HerdError as error:
            print(f"\r\nherd: {error}", file=sys.stderr)
            return 1
