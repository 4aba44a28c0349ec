"""Live output of a real run: `herd run --console` shows each machine's console and journal under its
name as they are written, a wait is one line (and two in log.txt, not one per poll), and nothing
that followed the machines outlives the run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.hooks.types import BackendInfo
from tests.conftest import assert_nothing_left

# Fails three times, then succeeds: a wait that polls four times.
SLOW = 'n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; test "$n" -ge 3'
LIVE = f'''
import herd

test = herd.Test(
    name="live",
    machines={{"server": {{}}, "client": {{}}}},
    script="""
start_all()
server.succeed("echo live-console-marker > /dev/console")
client.succeed("logger -t herdtest live-journal-marker")
server.succeed("sleep 3")  # time for the journal to show it while the run goes on
server.wait_until_succeeds({SLOW!r})
client.wait_until_succeeds("journalctl -t herdtest | grep -q live-journal-marker")
""",
)
'''


def _processes_naming(text: str) -> list[str]:
    """The command lines of the host's processes that name `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        if text in argv:
            found.append(argv)
    return found


def test_console_shows_consoles_and_journals_and_waits_in_one_line_each(
    herd_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    (tmp_path / "live.py").write_text(LIVE)
    output = tmp_path / "out"
    result = herd_cli("run", "live.py", "--console", "--output-dir", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = result.stderr.splitlines()
    run_id = re.search(r"run ([a-z0-9]{5})", shown[0])
    assert run_id is not None, shown[0]
    # Not a terminal: plain lines, no colour, no status line redrawn in place.
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert any(re.fullmatch(r"  server +console .*live-console-marker", line) for line in shown)
    journal_marker = [
        i
        for i, line in enumerate(shown)
        if re.fullmatch(r"  client +journal herdtest\[\d+\]: live-journal-marker", line)
    ]
    assert len(journal_marker) == 1
    assert not any(re.match(r"  client +console .*live-console-marker", line) for line in shown)

    waits = [i for i, line in enumerate(shown) if "for `n=$(cat" in line]
    assert len(waits) == 1 and re.match(
        r"  server +waited [0-9.]+ s for `.*` to succeed \(4 tries\)", shown[waits[0]]
    )
    assert journal_marker[0] < waits[0]  # shown as it was written, not when the run ended
    log = (output / "log.txt").read_text()
    assert log.count("$ n=$(cat") == 0  # the polls are not logged one by one
    assert log.count("server: waiting for `n=$(cat") == 1
    assert log.count("server: waited") == 1

    assert_nothing_left(run_id.group(1))
    assert _processes_naming(str(output)) == []  # every journalctl that followed a journal ended


def test_a_failed_wait_logs_its_last_poll(
    herd_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    (tmp_path / "failing.py").write_text(
        'import herd\n\ntest = herd.Test(name="failing", machines={"m": {}}, script="""\n'
        "m.start()\n"
        "m.wait_until_succeeds('echo try-output; false', timeout=3)\n"
        '""")\n'
    )
    output = tmp_path / "out"
    result = herd_cli("run", "failing.py", "--output-dir", str(output), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    log = (output / "log.txt").read_text()
    assert log.count("m: $ echo try-output; false") == 1  # the last poll, not every one
    assert log.count("try-output\n") == 1
    assert re.search(r"m: gave up waiting for `echo try-output; false` to succeed after [0-9.]+ s", log)
    assert len([line for line in result.stderr.splitlines() if "gave up waiting" in line]) == 1


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's script for a terminal")
def test_on_a_terminal_a_wait_keeps_its_elapsed_time_current_on_one_line(
    backend: BackendInfo, tmp_path: Path
) -> None:
    (tmp_path / "slow.py").write_text(
        'import herd\n\ntest = herd.Test(name="slow", machines={"m": {}}, script="""\n'
        'm.succeed("(sleep 2; touch /tmp/ready) >/dev/null 2>&1 &")\n'
        'm.wait_for_file("/tmp/ready")\n'
        '""")\n'
    )
    herd = [str(Path(sys.executable).with_name("herd")), "run", "slow.py", "-b", backend.name, "-o", "out"]
    # script(1) gives herd a terminal and copies what herd writes there to its own output.
    result = subprocess.run(
        ["script", "--quiet", "--return", "--command", shlex.join(herd), "/dev/null"],
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    shown = result.stdout.decode(errors="replace")
    assert result.returncode == 0, shown
    redraws = re.findall(r"\r\x1b\[2K(?:\x1b\[2m)?  m +waiting for file /tmp/ready to exist · (\d+) s", shown)
    seconds = [int(shown) for shown in redraws]
    assert len(seconds) >= 2 and seconds == sorted(seconds)  # redrawn in place as the seconds pass
    assert re.search(r"\r\x1b\[2K  m +waited [0-9.]+ s for file /tmp/ready to exist \(\d+ tries\)\r\n", shown)
    assert "\x1b[32mPASS" in shown  # a terminal gets colour
