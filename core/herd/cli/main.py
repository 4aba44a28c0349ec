"""The `herd` command: run tests, list plugins, check the host, manage the image cache, and reach
the machines of live runs (`herd list`, `herd shell`).

Exit status of `herd run`: 0 when every test passed, 1 when one failed or a run could not start on
this host (such as /run/herd read-only or full), 2 for an invalid test (a machine's image or
packages that cannot be had among them), a test file that does not load, or a bad command line,
128+N when signal N interrupted the run (130 for Ctrl-C, 143 for SIGTERM).

The command line is parsed with argparse: herd starts a process per run, and the standard library's
parser costs a fraction of a third-party one's import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from herd.hooks.manager import LoadFailure, Plugins
    from herd.run.driver import Driver, Outcome

EXIT_FAILED = 1
EXIT_INVALID = 2


def _style(text: str, code: str) -> str:
    from herd.report.terminal import colors_wanted, style

    return style(text, code, colors_wanted(sys.stdout))


def run(args: argparse.Namespace) -> int:
    from herd.command import channel
    from herd.linux import links

    # Both helpers start on other cores while herd loads the test and the plugins.
    links.start_helper()
    channel.start_spawner()
    from herd.errors import HerdError
    from herd.run.driver import Driver, RunOptions
    from herd.run.loader import load_tests

    try:
        tests = load_tests(args.file)
        options = [
            RunOptions(
                backend=args.backend,
                keep=args.keep,
                verbose=args.verbose,
                check=args.check,
                console=args.console or args.interactive,
            )
            for _ in tests
        ]
        drivers = [Driver(t.spec, t.source, o) for t, o in zip(tests, options, strict=True)]
    except HerdError as error:  # the file or a test in it is wrong: nothing has started
        print(f"herd: {error}", file=sys.stderr)
        return EXIT_INVALID
    ran: list[Driver] = []
    try:
        return _run_all(drivers, args.output_dir, ran, _session_runner(args.interactive))
    finally:
        if args.junit_xml is not None:
            from herd.report import junit

            junit.write([(driver.log.record, driver.output_dir) for driver in ran], args.junit_xml)


def _session_runner(interactive: bool) -> Callable[[Driver], Outcome]:
    """How each test runs: its script (`Driver.run`), or a REPL's session (`--interactive`)."""
    from herd.run.driver import Driver

    if not interactive:
        return Driver.run
    from herd.run.interactive import run_session

    return run_session


def _run_all(
    drivers: list[Driver], output_dir: Path | None, ran: list[Driver], run_one: Callable[[Driver], Outcome]
) -> int:
    """Run the tests in order with `run_one`, each driver appended to `ran` once it has run; the
    exit status."""
    from herd.errors import HerdError, SpecError
    from herd.report.log import printable

    status = 0
    for driver in drivers:
        if output_dir is not None:
            driver.options.output_dir = output_dir / driver.spec.name if len(drivers) > 1 else output_dir
        try:
            outcome = run_one(driver)
        except HerdError as error:  # the run could not start (its teardown has run)
            print(f"herd: {printable(str(error))}", file=sys.stderr)
            # a test whose image cannot be had (a package that does not exist) is invalid
            return EXIT_INVALID if isinstance(error, SpecError) else EXIT_FAILED
        except KeyboardInterrupt:  # Ctrl-C while the run started (an image building): torn down
            print("herd: interrupted", file=sys.stderr)
            return 128 + signal.SIGINT
        ran.append(driver)
        if outcome.interrupted:
            return 128 + signal.Signals[outcome.interrupted].value
        if not outcome.passed:
            status = EXIT_FAILED
    return status


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def _failures_data(failures: list[LoadFailure]) -> list[dict[str, str]]:
    return [
        {"name": f.name, "group": f.group, "distribution": f.distribution, "error": f.error} for f in failures
    ]


def _image_kinds(loaded: Plugins) -> dict[str, list[dict[str, str]]]:
    """The image kinds each loaded plugin offers (`herd_image_kinds`), by its registered name."""
    offers: dict[str, list[dict[str, str]]] = {}
    for implementation in loaded.manager.hook.herd_image_kinds.get_hookimpls():
        found: list[dict[str, str]] = []

        def offer(kind: str, about: str, found: list[dict[str, str]] = found) -> None:
            found.append({"kind": kind, "description": about})

        implementation.function(**{"offer": offer} if "offer" in implementation.argnames else {})
        offers[implementation.plugin_name] = found
    return offers


def plugins(args: argparse.Namespace) -> int:
    from herd.cli.doctor import confinement
    from herd.hooks.manager import GROUPS, Plugins, distribution_of, installed
    from herd.hooks.types import Capability

    loaded = Plugins()
    for group in GROUPS:
        if installed(group):
            loaded.load(group)
    offers = _image_kinds(loaded)
    groups: dict[str, list[dict[str, object]]] = {}
    for group in GROUPS:
        entry_points = installed(group)
        failures = {f.name: f for f in loaded.failures if f.group == group}
        groups[group] = []
        for entry_point in entry_points:
            entry: dict[str, object] = {
                "name": entry_point.name,
                "entry_point": entry_point.value,
                "distribution": distribution_of(entry_point),
                "loaded": entry_point.name not in failures,
            }
            if entry_point.name in failures:
                entry["error"] = failures[entry_point.name].error
                groups[group].append(entry)
                continue
            if (info := loaded.backends.get(entry_point.name)) is not None:
                entry["backend"] = {
                    "kind": info.kind.value,
                    "priority": info.priority,
                    "description": info.description,
                    "capabilities": sorted(info.capabilities),
                    "confined": Capability.CONFINED in info.capabilities,
                    "confinement": confinement(info),
                    "images": sorted(info.images),
                }
            entry["network_providers"] = [
                {"name": p.name, "description": p.description, "features": sorted(p.features)}
                for p in loaded.providers_of(f"{group}:{entry_point.name}")
            ]
            if f"{group}:{entry_point.name}" in offers:
                entry["images"] = offers[f"{group}:{entry_point.name}"]
            groups[group].append(entry)
    if args.json:
        _print_json(groups)
        return 0
    width = max([10, *(len(str(entry["name"])) for found in groups.values() for entry in found)])
    for group, entries in groups.items():
        print(_style(f"{group}:", "1"))
        if not entries:
            print("  (none installed)")
        for entry in entries:
            name, value, dist = entry["name"], entry["entry_point"], entry["distribution"]
            if not entry["loaded"]:
                print(_style(f"  {name:<{width}} FAILED  {value} ({dist}): {entry['error']}", "31"))
                continue
            indent = f"  {'':<{width}}         "
            backend = entry.get("backend")
            if isinstance(backend, dict):
                capabilities = ", ".join(backend["capabilities"]) or "none"
                print(f"  {name:<{width}} loaded  {backend['kind']}, priority {backend['priority']} ({dist})")
                print(f"{indent}{backend['description']}")
                print(f"{indent}capabilities: {capabilities}")
                print(f"{indent}boots images: {', '.join(backend['images'])}")
                line = backend["confinement"] if backend["confined"] else _style(backend["confinement"], "33")
                print(f"{indent}{line}")
            else:
                print(f"  {name:<{width}} loaded  {value} ({dist})")
            providers = entry["network_providers"]
            assert isinstance(providers, list)
            for provider in providers:
                print(f"{indent}network provider {provider['name']}: {provider['description']}")
                print(f"{indent}features: {', '.join(provider['features']) or 'none'}")
            for offer in entry.get("images", []):  # type: ignore[attr-defined]
                print(f"{indent}image kind {offer['kind']}: {offer['description']}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from herd.cli.doctor import all_checks
    from herd.hooks.manager import Plugins

    loaded = Plugins()
    checks = list(all_checks(loaded, args.machines))
    failed = sum(not check.ok for _, check in checks) + len(loaded.failures)
    if args.json:
        _print_json(
            {
                "ok": not failed,
                "checks": [{"section": name, **dataclasses.asdict(check)} for name, check in checks],
                "plugin_failures": _failures_data(loaded.failures),
            }
        )
        return 1 if failed else 0
    section = None
    for name, check in checks:
        if name != section:
            print(_style(f"{name}:", "1"))
            section = name
        if not check.ok:
            mark = _style("FAIL", "31")
        else:
            mark = _style("warn", "33") if check.warning else _style("ok  ", "32")
        print(f"  {mark} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}")
    for failure in loaded.failures:
        print(
            _style(
                f"  FAIL plugin {failure.name} ({failure.distribution}) failed to load: {failure.error}", "31"
            )
        )
    return 1 if failed else 0


def devices(args: argparse.Namespace) -> int:
    from herd.hooks.manager import Plugins

    loaded = Plugins().load_all()
    offers: list[tuple[str, str]] = []
    problems: list[str] = []
    loaded.hook.herd_list_devices(
        offer=lambda name, about: offers.append((name, about)), problem=problems.append
    )
    status = 1 if problems or loaded.failures else 0
    if args.json:
        _print_json(
            {
                "devices": [{"name": name, "about": about} for name, about in offers],
                "problems": problems,
                "plugin_failures": _failures_data(loaded.failures),
            }
        )
        return status
    width = max((len(name) for name, _ in offers), default=0)
    for name, about in offers:
        print(f"{name:<{width}}  {about}")
    if not offers:
        print("nothing to grant: no installed plugin offers devices (see `herd plugins`)")
    for problem in problems:
        print(_style(f"problem: {problem}", "31"))
    for failure in loaded.failures:
        loading = f"plugin {failure.name} ({failure.distribution}) failed to load: {failure.error}"
        print(_style(f"problem: {loading}", "31"))
    return status


def clean(args: argparse.Namespace) -> int:
    from herd.hooks.manager import Plugins
    from herd.host.imagecache import remove_debris
    from herd.host.residue import is_live, known_runs, leftovers, reap_dead

    plugins = Plugins().load_all()
    if args.dry_run:
        runs = [
            {"run": run_id, "live": is_live(run_id), "left": leftovers(run_id, plugins)}
            for run_id in sorted(known_runs(plugins))
        ]
        debris = [str(path) for path in remove_debris(dry_run=True)]
        if args.json:
            _print_json({"runs": runs, "image_debris": debris})
            return 0
        for run in runs:
            left = run["left"]
            assert isinstance(left, list)
            state = "live" if run["live"] else "dead"
            print(f"run {run['run']} ({state}): {f'{len(left)} left' if left else 'nothing left'}")
            for item in left:
                print(f"  {item}")
        for path in debris:
            print(f"image cache: {path}, left by a build or prune that did not finish")
        return 0
    reaped = reap_dead(plugins)
    debris = [str(path) for path in remove_debris()]
    if args.json:
        _print_json({"removed": reaped, "image_debris": debris})
        return 0
    for run_id, removed in reaped.items():
        print(f"run {run_id}: removed {len(removed)}")
        for item in removed:
            print(f"  {item}")
    for path in debris:
        print(f"image cache: removed {path}, left by a build or prune that did not finish")
    if not reaped and not debris:
        print("nothing to clean: no dead run left anything")
    return 0


def images(args: argparse.Namespace) -> int:
    from herd.cli import images as command

    return command.prune(args) if args.action == "prune" else command.list_images(args)


class _PrintVersions(argparse.Action):
    """`--version`: loads every plugin to name their versions, so only when asked (not at parse setup)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from herd.cli.version import report
        from herd.hooks.manager import Plugins

        print("\n".join(report(Plugins())))
        parser.exit()


def list_runs(args: argparse.Namespace) -> int:
    from herd.cli.liveruns import list_runs as command

    return command(args)


def shell(args: argparse.Namespace) -> int:
    from herd.cli.shell import shell as command

    return command(args)


def duration(text: str) -> float:
    from herd.cli.images import duration as seconds

    return seconds(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="herd", description="Multi-machine integration tests on containers and VMs."
    )
    top.add_argument(
        "--version",
        action=_PrintVersions,
        nargs=0,
        help="print the versions of herd and of each installed plugin, then exit",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser("run", help="run the herd tests a file declares")
    run_parser.add_argument("file", type=Path, help="a Python file that declares herd.Test objects")
    run_parser.add_argument(
        "--backend",
        "-b",
        metavar="NAME",
        help="backend for machines that name none "
        "(default: $HERD_BACKEND, else the installed one with the highest priority)",
    )
    run_parser.add_argument(
        "--output-dir",
        "-o",
        type=Path,
        metavar="DIR",
        help="where the log, consoles and journals go (default: herd-output/<test>/<time>-<run id>)",
    )
    run_parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the machines up after the script, passed or failed, until Ctrl-C (see `herd shell`)",
    )
    run_parser.add_argument("--verbose", "-v", action="store_true", help="show every command on the terminal")
    run_parser.add_argument(
        "--console",
        action="store_true",
        help="show each machine's console and journal as they are written, under its name "
        "(always on with --interactive)",
    )
    run_parser.add_argument(
        "--interactive",
        "-i",
        action="store_true",
        help="instead of running the script, open a Python REPL that holds its names: the machines, "
        "start_all(), test_script(); Ctrl-D ends the run",
    )
    run_parser.add_argument(
        "--junit-xml",
        type=Path,
        metavar="FILE",
        help="also write a JUnit XML report of the runs to FILE, a testcase per subtest "
        "(log.html, beside log.txt, is always written)",
    )
    run_parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="do not check the scripts' names and machine methods before the run",
    )
    run_parser.set_defaults(handler=run)

    plugins_parser = commands.add_parser(
        "plugins", help="list installed plugins: what loaded, what failed and why"
    )
    plugins_parser.set_defaults(handler=plugins)
    doctor_parser = commands.add_parser(
        "doctor", help="check this host; print the fix for each missing piece"
    )
    doctor_parser.add_argument(
        "--machines",
        "-n",
        type=int,
        default=2,
        metavar="N",
        help="check the limits a test of N machines meets",
    )
    doctor_parser.set_defaults(handler=doctor)
    devices_parser = commands.add_parser(
        "devices", help="list what the installed device plugins can grant on this host, by name"
    )
    devices_parser.set_defaults(handler=devices)
    clean_parser = commands.add_parser(
        "clean", help="remove what dead runs left: processes, links, rules, state"
    )
    clean_parser.add_argument(
        "--dry-run", "-n", action="store_true", help="only list runs and what they left"
    )
    clean_parser.set_defaults(handler=clean)
    list_parser = commands.add_parser(
        "list", help="list the live runs: their machines, backends and addresses"
    )
    list_parser.set_defaults(handler=list_runs)
    shell_parser = commands.add_parser(
        "shell",
        usage="herd shell [-h] [RUN] MACHINE [-- COMMAND ...]",
        help="a login shell, or one command, in a machine of a live run (exit status passed back)",
    )
    shell_parser.add_argument("where", nargs=argparse.REMAINDER, metavar="[RUN] MACHINE [-- COMMAND ...]")
    shell_parser.set_defaults(handler=shell)
    images_parser = commands.add_parser(
        "images", help="list the images and layers herd has cached ($HERD_CACHE_DIR), or prune them"
    )
    images_parser.set_defaults(handler=images, action="list")
    image_actions = images_parser.add_subparsers(dest="action", metavar="ACTION")
    prune_parser = image_actions.add_parser(
        "prune", help="remove cached images and layers that no live run uses"
    )
    prune_parser.add_argument(
        "--older-than",
        type=duration,
        default=0.0,
        metavar="DURATION",
        help="only those unused for that long: a number and a unit, s, m, h, d or w ('12h', '7d')",
    )
    for command in (
        plugins_parser,
        doctor_parser,
        devices_parser,
        clean_parser,
        images_parser,
        prune_parser,
        list_parser,
    ):
        command.add_argument("--json", action="store_true", help="print the same as JSON, for programs")
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.handler(args))


def entry() -> None:
    """The `herd` command. Exits without the interpreter's final clean-up.

    By the time a command returns, herd has torn down everything it made and closed its files;
    tearing down the interpreter's hundreds of modules and objects would add a tenth of a second
    to every run for nothing.
    """
    try:
        main()
        code = 0
    except BrokenPipeError:  # `herd plugins | head`: the reader has what it wanted
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
