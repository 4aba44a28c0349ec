"""`herd run FILE --interactive`: a Python REPL that holds a run's script names, its machines
among them, and `test_script()`, which runs the test's declared script.

The REPL is ptpython's where it is installed (the `interactive` extra) and the terminal is one,
with its history and the completion of machine methods; else the standard library's, with readline's
history and completion. `HERD_REPL=stdlib` chooses the standard library's even where ptpython is
there. Each keeps its history under `$XDG_STATE_HOME/herd` (`~/.local/state/herd`).

Signals: Ctrl-C raises KeyboardInterrupt in the command the REPL runs, and a machine's command
that it waits for is cancelled (`herd.command.channel`); the run goes on. SIGTERM ends the run as
it ends any: `Interrupted`, which both REPLs let through. Ctrl-D (or `exit()`) leaves the REPL and
the run is torn down. The test's timeout does not apply: the person at the REPL ends the session.

The session passes unless the last `test_script()` failed (or a signal ended it).
"""

from __future__ import annotations

import code
import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

from herd.declare.script import run_script
from herd.errors import ArgumentError, HerdError, ScriptExitError
from herd.run.signals import Interrupted, signals_interrupt

if TYPE_CHECKING:
    from herd.run.driver import Driver, Outcome

REPL_VARIABLE = "HERD_REPL"  # "stdlib": the standard library's REPL even where ptpython is installed
REPLS = ("ptpython", "stdlib")
SIGNAL_CHECK_INTERVAL = 0.1  # how often the main thread looks for a signal while ptpython prompts
PROMPT_EXIT_WAIT = 5.0  # seconds a signal at the prompt waits for ptpython's prompt to end
PROMPT_POLL = 0.02  # seconds between two asks that it end

Repl = Callable[[dict[str, Any], str], None]


def run_session(driver: Driver) -> Outcome:
    """Open the run, hand its names to a REPL until the person leaves it, then tear the run down;
    how it went."""
    repl = chosen_repl()
    with driver:
        namespace = driver.namespace()
        namespace["test_script"] = _test_script(driver, namespace)
        try:
            with signals_interrupt(None, (signal.SIGTERM,)):
                repl(namespace, _banner(driver))
        except Interrupted as interruption:
            driver.note_interruption(interruption)
    return driver.outcome


def chosen_repl() -> Repl:
    """ptpython's REPL, unless `HERD_REPL=stdlib`, ptpython is not installed or the terminal is none."""
    wanted = os.environ.get(REPL_VARIABLE, "ptpython")
    if wanted not in REPLS:
        raise ArgumentError(f"${REPL_VARIABLE}: expected one of {', '.join(REPLS)}, got {wanted!r}")
    usable = importlib.util.find_spec("ptpython") is not None and sys.stdin.isatty()
    return ptpython_repl if wanted == "ptpython" and usable else stdlib_repl


def _test_script(driver: Driver, namespace: dict[str, Any]) -> Callable[[], None]:
    def test_script() -> None:
        """Run the test's declared script on this session's machines; the session's outcome is
        its last run's."""
        if driver.spec.script is None:
            raise HerdError(f"test {driver.spec.name!r} declares no script")
        try:
            run_script(driver.spec.script, namespace, driver.spec.name, driver.source)
        except BaseException as error:
            driver.outcome.error = error
            if isinstance(error, ScriptExitError) and isinstance(error.__cause__, KeyboardInterrupt):
                raise error.__cause__ from None  # Ctrl-C: the REPL's, not the script's
            raise
        driver.outcome.error = None

    return test_script


def _banner(driver: Driver) -> str:
    names = ", ".join(machine.spec.script_name for machine in driver.machines)
    return (
        f"herd: interactive session of {driver.spec.name}, run {driver.run_id}; machines: {names}\n"
        f"start_all() boots them, test_script() runs the test's script; "
        f"Ctrl-C stops a command, Ctrl-D ends the run"
    )


def history_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "herd"


def _exit_once(app: Any) -> None:
    """End a prompt_toolkit application unless it is ending already."""
    if app.is_running and app.future is not None and not app.future.done():
        app.exit()


def ptpython_repl(namespace: dict[str, Any], banner: str) -> None:
    from ptpython.repl import PythonRepl

    class SessionRepl(PythonRepl):
        """ptpython's REPL, which shows every exception a command raises and goes on; but a signal
        that ends the run (`Interrupted`) ends the REPL too."""

        interruption: Interrupted | None = None

        def _handle_exception(self, e: BaseException) -> None:
            if isinstance(e, Interrupted):
                raise e
            super()._handle_exception(e)

        def read(self) -> str:
            """ptpython's prompt, read in a thread of its own while the main thread waits for it
            in short steps: the prompt's own wait (a join without a timeout) would sleep through
            a SIGTERM that the kernel hands to another of herd's threads.

            A signal anywhere in here, starting the reader included, leaves as Ctrl-D leaves:
            ptpython's loop prints and ignores any other exception that its `read` raises."""
            answer: Future[str] = Future()

            def prompt() -> None:
                try:
                    answer.set_result(PythonRepl.read(self))
                except BaseException as error:  # EOFError (Ctrl-D) among them: raised below
                    answer.set_exception(error)

            try:
                threading.Thread(target=prompt, name="herd-prompt", daemon=True).start()
                while not wait([answer], SIGNAL_CHECK_INTERVAL).done:
                    pass
                return answer.result()
            except Interrupted as interruption:
                self.interruption = interruption
                self._end_prompt(answer)
                raise EOFError from interruption

        def _end_prompt(self, answer: Future[str]) -> None:
            """Have the prompt exit, and wait until it has given its `answer`: the prompt holds the
            terminal (and the output of other threads) until then. The signal may have come while
            it was still starting its event loop, so ask again until it is done."""
            deadline = time.monotonic() + PROMPT_EXIT_WAIT
            while not answer.done() and time.monotonic() < deadline:
                if self.app.is_running and self.app.loop is not None:
                    self.app.loop.call_soon_threadsafe(_exit_once, self.app)
                wait([answer], PROMPT_POLL)

    history_dir().mkdir(parents=True, exist_ok=True)
    repl = SessionRepl(
        get_globals=lambda: namespace,
        get_locals=lambda: namespace,
        history_filename=str(history_dir() / "ptpython-history"),
    )
    repl.confirm_exit = False  # Ctrl-D ends the run, as in the standard library's REPL
    print(banner)
    repl.run()
    if repl.interruption is not None:
        raise repl.interruption


class _Console(code.InteractiveConsole):
    """The standard library's REPL, which lets `Interrupted` end it and says of a Ctrl-C only that
    it came, as ptpython's does (not where herd waited for the machine)."""

    def runcode(self, code: CodeType) -> None:
        try:
            exec(code, self.locals)
        except (Interrupted, SystemExit):
            raise
        except KeyboardInterrupt:
            self.write("KeyboardInterrupt\n")
        except BaseException:
            self.showtraceback()


def stdlib_repl(namespace: dict[str, Any], banner: str) -> None:
    import readline
    import rlcompleter

    history = history_dir() / "history"
    readline.set_completer(rlcompleter.Completer(namespace).complete)
    readline.parse_and_bind("tab: complete")
    if history.exists():
        readline.read_history_file(history)
    try:
        _Console(namespace).interact(banner, exitmsg="")
    except SystemExit:  # exit(): the session ends as with Ctrl-D
        pass
    finally:
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(history)
