"""`herd list`: the live runs on this host, each with its machines' backends, states and
addresses, as each run tells them over its socket (`herd.run.shellserver`)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from herd.command.terminal import FrameStream
from herd.errors import HerdError
from herd.host.residue import is_live, known_runs
from herd.host.rundir import state_root
from herd.run.shellserver import SOCKET_NAME

ANSWER_TIMEOUT = 10.0  # seconds a run has to answer (its answer is read from memory)
STARTING = "starting or ending"  # what a live run is while its socket is not there


def live_run_ids() -> list[str]:
    """The runs whose process lives, by the lock each holds (`herd.host.residue`), which root
    alone may take."""
    if os.geteuid() != 0:
        raise HerdError("herd list and herd shell need root, as herd run does")
    return sorted(run_id for run_id in known_runs() if is_live(run_id))


def connect(run_id: str) -> FrameStream:
    """A connection to run `run_id`'s socket; HerdError when it does not answer."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        connection.connect(str(state_root() / run_id / SOCKET_NAME))
    except PermissionError:
        connection.close()
        raise HerdError(f"run {run_id} answers root alone") from None
    except OSError:
        connection.close()
        raise HerdError(f"run {run_id} does not answer: {STARTING}") from None
    return FrameStream(connection)


def describe(run_id: str) -> dict[str, object]:
    """What run `run_id` says of itself, or `{"run": ID, "state": WHY}` where it does not answer."""
    try:
        stream = connect(run_id)
    except HerdError as error:
        return {"run": run_id, "state": str(error).removeprefix(f"run {run_id} ")}
    with stream.socket:
        stream.socket.settimeout(ANSWER_TIMEOUT)
        try:
            stream.send({"describe": True})
            answer = stream.receive()
        except OSError:
            answer = None
    if answer is None or not isinstance(described := answer[0].get("run"), dict):
        return {"run": run_id, "state": STARTING}
    return described


def list_runs(args: argparse.Namespace) -> int:
    try:
        runs = [describe(run_id) for run_id in live_run_ids()]
    except HerdError as error:
        print(f"herd: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print("no live run on this host")
    for run in runs:
        if "machines" not in run:
            print(f"run {run['run']}: {run['state']}")
            continue
        print(f"run {run['run']}: {run['test']} · pid {run['pid']} · output {run['output_dir']}")
        machines = run["machines"]
        assert isinstance(machines, list)
        width = max(len(str(machine["name"])) for machine in machines)
        for machine in machines:
            addresses = ", ".join(machine["addresses"]) or "no address"
            print(
                f"  {machine['name']:<{width}}  {machine['backend']:<12} {machine['state']:<12} {addresses}"
            )
    return 0
