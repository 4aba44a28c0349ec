"""Which engines herd can run machines on, told from the address alone (no root, no engine)."""

from __future__ import annotations

import pytest

from herd_docker import engine


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("unix:///run/user/1000/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://[::1]:2376", True),
        ("tcp://localhost:2375", True),
        ("tcp://10.1.2.3:2376", False),
        ("tcp://docker.example:2376", False),
        ("ssh://ci@builder", False),
        ("npipe:////./pipe/docker_engine", False),
    ],
)
def test_local_and_remote_engines(address: str, local: bool) -> None:
    assert engine.is_local(address) is local


def test_a_remote_engine_is_named_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "ssh://ci@builder")
    problem = engine.remote_problem()
    assert problem is not None and problem.startswith("the Docker engine at ssh://ci@builder (DOCKER_HOST)")
    assert engine.run_containers("abcde") == []  # nothing of herd's is ever there: never asked
    monkeypatch.delenv("DOCKER_HOST")
    assert engine.remote_problem() is None
