"""Every error herd raises on purpose; each message names what it is about."""

from __future__ import annotations


class HerdError(Exception):
    """Base of herd's own errors: the message is meant for the user as it is."""


class SpecError(HerdError):
    """A test declaration is invalid. Lists every problem found, not only the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"{len(self.problems)} problems in the test declaration:\n{lines}")


class PluginError(HerdError):
    """A plugin could not be loaded or broke its contract."""


class ImageError(HerdError):
    """A machine's image cannot be had: an unknown suite, a package that does not exist, a corrupt
    archive. `field` is the machine field at fault ("image" or "packages"); the message says why,
    with the package manager's or tool's own words. herd reports it before any machine boots,
    naming the test and the machine."""

    def __init__(self, message: str, field: str = "image") -> None:
        super().__init__(message)
        self.field = field


class ArgumentError(HerdError, ValueError):
    """A Machine method or a run option got a value herd cannot use: a command holding a NUL byte,
    a timeout that is not a positive number of seconds within `herd.declare.spec.MAX_TIMEOUT`. Raised
    before anything reaches a machine, which keeps running."""


class CapabilityError(HerdError):
    """A Machine method needs a capability that the machine's backend does not declare."""


class LinkError(HerdError):
    """herd's link helper could not make or change a link: the message says why (such as a kernel
    without netem, which cannot delay or drop packets). `errno` is the kernel's error number, if any."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class MachineError(HerdError):
    """A machine failed: it did not boot, it is not running, or its backend reported an error."""


class CommandFailed(MachineError):
    """A command given to `succeed` failed, or one given to `fail` succeeded."""

    def __init__(self, message: str, status: int, output: str) -> None:
        super().__init__(message)
        self.status = status
        self.output = output


class WaitTimeout(MachineError, TimeoutError):
    """A wait or a command did not finish within its timeout."""


class PollingConditionFailed(HerdError):
    """A polling condition of the script (`polling_condition`) did not hold when it was checked
    between two commands."""


class ScriptExitError(HerdError):
    """The script raised SystemExit (`sys.exit()`) or KeyboardInterrupt itself: its test fails, and
    the run goes on (a real Ctrl-C interrupts the run instead)."""


class TestTimeout(HerdError):
    """The whole test ran past its global timeout."""

    __test__ = False  # not a pytest test class
