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


@pytest.mark.parametrize(
    ("arguments", "config", "setting"),
    [
        (["dockerd", "--userns-remap=default"], None, "default"),
        (["dockerd", "--userns-remap", "ci:ci"], None, "ci:ci"),
        (["dockerd", "--config-file=CONFIG"], '{"userns-remap": "default"}', "default"),
        (["dockerd", "--config-file", "CONFIG"], '{"userns-remap": ""}', None),
        (["dockerd", "--config-file=CONFIG"], "not json", None),
        (["dockerd", "--config-file=CONFIG"], None, None),
        (["dockerd", "--debug"], None, None),
    ],
)
def test_the_engines_remap_setting(
    tmp_path, arguments: list[str], config: str | None, setting: str | None
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "daemon.json"
    if config is not None:
        path.write_text(config)
    given = [argument.replace("CONFIG", str(path)) for argument in arguments]
    assert engine._remap_setting(given) == setting


def test_a_remap_users_range_is_read_from_subordinate_ids(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = tmp_path / "subuid"
    ids.write_text("alice:165536:65536\ndockremap:100000:65536\nsmall:300000:1000\n")
    assert engine._subordinate_start(str(ids), "dockremap") == 100000
    assert engine._subordinate_start(str(ids), "small") is None  # a machine needs 65536 ids
    assert engine._subordinate_start(str(ids), "nobody-here") is None
    assert engine._subordinate_start(str(tmp_path / "missing"), "dockremap") is None


@pytest.mark.skipif(not engine.reachable(), reason="no local Docker engine answers")
def test_the_remap_read_from_the_configuration_is_the_engines() -> None:
    remapped = "name=userns" in engine.client().info()["SecurityOptions"]
    assert (engine.remapped_root() is not None) == remapped
