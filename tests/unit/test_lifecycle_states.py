"""The lifecycle's state machine against a FakeRuntime: stop's escalation, the exit
collected once, --rm after an exit and after a failed start, rm refusing a running
container, two starts at once, and a runtime that fails mid-create leaving nothing.

Pure unit tests: the runtime and the monitors are fakes, the audit log is a list;
the container folders, names, locks and exit files are the real ones (in a tmp dir).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from secpod import audit
from secpod.errors import Conflict, RuntimeFailed
from secpod.sandbox import bundle as bundlemod
from secpod.sandbox import create, host, operations, run, state
from secpod.sandbox.environment import Environment
from secpod.sandbox.operations import Status
from secpod.spec import ContainerSpec
from tests.fakeruntime import Clock, FakeMonitors, FakeRuntime

Records = list[tuple[str, str, dict[str, Any]]]


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Records:
    out: Records = []

    def record(action: str, outcome: str, **kw: Any) -> None:
        out.append((action, outcome, kw))

    monkeypatch.setattr(audit, "record", record)
    return out


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return FakeRuntime(tmp_path / "runtime-root")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def env(fake: FakeRuntime, clock: Clock) -> Environment:
    return Environment(host.probe(), lambda _name: fake, FakeMonitors(), clock=clock,
                       sleep=clock.sleep)


def _container(name: str = "c1", *, auto_remove: bool = False) -> state.Container:
    """A created container as create() leaves it: record, bundle, log, no runtime state."""
    cid, name, folder = state.reserve(name)
    digest = bundlemod.write_config(folder / "bundle",
                                    {"process": {"args": ["sh"]}, "root": {"path": "rootfs"}})
    ctr = state.Container(id=cid, name=name, image_ref="example/img", image_digest="sha256:0",
                          profile="strict", profile_hash="h", created=state.now(),
                          args=["sh"], root_mode="shared-readonly", auto_remove=auto_remove,
                          config_digest=digest, runtime="fake")
    ctr.log_path.touch()
    ctr.save()
    (folder / state.CREATING).unlink()
    return ctr


def _actions(records: Records) -> list[tuple[str, str]]:
    return [(action, outcome) for action, outcome, _ in records]


def _held(env: Environment, name: str = "c1", **kw: Any) -> state.Container:
    """A created container held by its monitor, as `secpod create` leaves it."""
    ctr = _container(name, **kw)
    with operations.changing(ctr) as ctr:
        ctr.monitor = "conmon"
    operations.launch(ctr, env)
    return ctr


def _running(env: Environment, name: str = "c1", **kw: Any) -> state.Container:
    return operations.start(_held(env, name, **kw), env)


def test_start_creates_under_the_monitor_and_records_it(env: Environment, fake: FakeRuntime,
                                                        records: Records) -> None:
    ctr = _running(env)
    assert fake.containers[ctr.id]["status"] == "running"
    assert operations.status(ctr, env) is Status.RUNNING
    assert ctr.reload().started is not None and ctr.reload().monitor == "conmon"
    assert _actions(records) == [("container.start", "ok")]
    assert records[0][2]["details"]["runtime"] == "fake"


def test_stop_sends_term_then_kill_after_the_timeout(env: Environment, fake: FakeRuntime,
                                                     clock: Clock, records: Records) -> None:
    ctr = _running(env)
    fake.ignored.add("TERM")
    operations.stop(ctr.name, timeout=3, env=env)
    assert [sig for _, sig in fake.signals] == ["TERM", "KILL"]
    assert clock.now >= 3
    stop = next(kw for action, _, kw in records if action == "container.stop")
    assert stop["details"]["killed"] is True and stop["details"]["timeout"] == 3
    after = ctr.reload()
    assert after.exit_recorded and after.exit_code == 137 and after.stopped_by == "stop"
    assert operations.status(after, env) is Status.EXITED
    assert ctr.id not in fake.containers  # the runtime's state is deleted once collected


def test_stop_that_term_ends_does_not_escalate(env: Environment, fake: FakeRuntime,
                                               clock: Clock, records: Records) -> None:
    ctr = _running(env)
    operations.stop(ctr.name, timeout=10, env=env)
    assert [sig for _, sig in fake.signals] == ["TERM"]
    assert clock.now < 10
    assert ctr.reload().exit_code == 143
    stop = next(kw for action, _, kw in records if action == "container.stop")
    assert stop["details"]["killed"] is False


def test_stop_of_a_container_that_is_not_running_is_a_conflict(env: Environment,
                                                               records: Records) -> None:
    ctr = _container()
    with pytest.raises(Conflict, match="is not running \\(created\\)"):
        operations.stop(ctr.name, env=env)
    assert records == []


def test_the_exit_is_collected_once(env: Environment, fake: FakeRuntime,
                                    records: Records) -> None:
    ctr = _running(env)
    fake.exit(ctr.id, 7)
    assert operations.status(ctr, env) is Status.STOPPED
    operations.collect_exit(ctr, env)
    operations.collect_exit(ctr, env)  # conmon's callback and a racing `rm`, say
    exits = [kw for action, _, kw in records if action == "container.exit"]
    assert len(exits) == 1 and exits[0]["exit_status"] == 7
    assert ctr.reload().exit_code == 7 and operations.status(ctr, env) is Status.EXITED


def test_an_exit_without_a_status_is_recorded_as_unknown(env: Environment, clock: Clock,
                                                         records: Records) -> None:
    ctr = _running(env)
    operations.collect_exit(ctr, env)  # no exit file: conmon died with the container
    assert clock.now >= 5  # it waited for conmon's file first
    (exit_record,) = [(o, kw) for action, o, kw in records if action == "container.exit"]
    assert exit_record[0] == "error" and exit_record[1]["reason"] == "exit status unknown"


def test_rm_refuses_a_running_container_and_rm_f_kills_it(env: Environment,
                                                          fake: FakeRuntime,
                                                          records: Records) -> None:
    ctr = _running(env)
    with pytest.raises(Conflict, match="is running") as e:
        operations.remove(ctr.name, env=env)
    assert "secpod rm -f" in (e.value.hint or "")
    assert ctr.dir.exists() and fake.containers[ctr.id]["status"] == "running"
    operations.remove(ctr.name, force=True, env=env)
    assert [sig for _, sig in fake.signals] == ["KILL"]
    assert not ctr.dir.exists() and ctr.id not in fake.containers
    assert _actions(records)[-2:] == [("container.exit", "ok"), ("container.rm", "ok")]
    with pytest.raises(Exception, match="No such container|not found"):
        state.lookup(ctr.name)


def test_run_rm_removes_the_container_after_its_exit(env: Environment, fake: FakeRuntime,
                                                     records: Records,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[state.Container] = []

    def fake_create(spec: ContainerSpec, _env: Environment, durable: bool = True
                    ) -> state.Container:
        made.append(_container(auto_remove=True))
        return made[0]

    monkeypatch.setattr(run, "create", fake_create)
    monitors: Any = env.monitors
    monitors.foreground_code = 3
    assert run.run(ContainerSpec(image="example/img", auto_remove=True), env=env) == 3
    assert not made[0].dir.exists() and not fake.containers
    assert _actions(records) == [("container.start", "ok"), ("container.exit", "ok"),
                                 ("container.rm", "ok")]
    assert records[1][2]["exit_status"] == 3


def test_run_rm_removes_the_container_when_the_start_fails(
        env: Environment, fake: FakeRuntime, records: Records,
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[state.Container] = []

    def fake_create(spec: ContainerSpec, _env: Environment, durable: bool = True
                    ) -> state.Container:
        made.append(_container(auto_remove=True))
        return made[0]

    monkeypatch.setattr(run, "create", fake_create)
    monitors: Any = env.monitors
    monitors.foreground_code = RuntimeFailed("fake could not start the container: no")
    with pytest.raises(RuntimeFailed):
        run.run(ContainerSpec(image="example/img", auto_remove=True), env=env)
    assert not made[0].dir.exists()
    (exit_record,) = [(o, kw) for action, o, kw in records if action == "container.exit"]
    assert exit_record[0] == "error" and "could not start" in exit_record[1]["reason"]
    assert _actions(records)[-1] == ("container.rm", "ok")


def test_two_starts_at_once_start_it_once(env: Environment, fake: FakeRuntime,
                                          records: Records) -> None:
    ctr = _held(env)
    fake.start_gate = threading.Event()
    outcomes: list[object] = []

    def start() -> None:
        try:
            outcomes.append(operations.start(ctr, env))
        except Conflict as e:
            outcomes.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    fake.start_gate.set()
    for t in threads:
        t.join(10)
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(outcomes) == 2 and len(conflicts) == 1
    assert "already running" in conflicts[0].message
    # The second start neither deleted nor re-created what the first started.
    assert [op for op, _ in fake.calls] == ["create", "start"]
    assert fake.containers[ctr.id]["status"] == "running"
    assert _actions(records) == [("container.start", "ok")]


def test_a_runtime_failing_mid_create_leaves_nothing(env: Environment, fake: FakeRuntime,
                                                     records: Records,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[state.Container] = []

    def fake_create(spec: ContainerSpec, _env: Environment, durable: bool = True
                    ) -> state.Container:
        made.append(_container("half"))
        return made[0]

    monkeypatch.setattr(create, "create", fake_create)
    fake.fail["create"] = "cannot set memory limit"
    with pytest.raises(RuntimeFailed, match="cannot set memory limit"):
        create.create_detached(ContainerSpec(image="example/img", name="half"), env)
    assert not made[0].dir.exists() and not fake.containers
    assert not (state.containers_dir() / "names" / "half").exists()
    assert state.all_containers() == []
    assert _actions(records) == [("container.rm", "error")]
    assert "create failed" in records[0][2]["reason"]


def test_a_failed_start_is_recorded_and_the_container_stays_created(
        env: Environment, fake: FakeRuntime, records: Records) -> None:
    ctr = _held(env)
    fake.fail["start"] = "exec.fifo: no such file"
    with pytest.raises(RuntimeFailed):
        operations.start(ctr, env)
    assert _actions(records) == [("container.start", "error")]
    assert ctr.reload().started is None


def test_kill_normalises_the_signal_and_refuses_an_exited_container(
        env: Environment, fake: FakeRuntime, records: Records) -> None:
    ctr = _running(env)
    fake.ignored.add("USR1")
    operations.kill(ctr.name, "sigusr1", env=env)
    assert fake.signals == [(ctr.id, "USR1")]
    fake.exit(ctr.id, 0)
    operations.collect_exit(ctr, env)
    with pytest.raises(Conflict, match="is not running \\(exited\\)"):
        operations.kill(ctr.name, env=env)


def test_wait_returns_the_exit_status_once_recorded(env: Environment, fake: FakeRuntime,
                                                    clock: Clock, records: Records) -> None:
    ctr = _running(env)
    fake.exit(ctr.id, 7)  # its monitor is gone without recording: wait records it
    assert operations.wait_exit(ctr.name, env=env) == 7
    assert [kw["exit_status"] for a, _, kw in records if a == "container.exit"] == [7]
    assert operations.wait_exit(ctr.id[:12], env=env) == 7  # exited already: at once
    now = clock.now
    assert operations.wait_exit(ctr.name, env=env) == 7 and clock.now == now


def test_restart_stops_a_running_container_and_starts_it_again(
        env: Environment, fake: FakeRuntime, records: Records) -> None:
    ctr = _running(env)
    operations.restart(ctr.name, timeout=3, env=env)
    assert [sig for _, sig in fake.signals] == ["TERM"]
    assert operations.status(ctr, env) is Status.RUNNING
    assert _actions(records) == [("container.start", "ok"), ("container.stop", "ok"),
                                 ("container.exit", "ok"), ("container.start", "ok")]
    fake.exit(ctr.id, 0)
    operations.collect_exit(ctr, env)
    operations.restart(ctr.name, env=env)  # an exited one is only started
    assert operations.status(ctr, env) is Status.RUNNING


def test_rename_moves_the_name_and_keeps_everything_else(env: Environment,
                                                         records: Records) -> None:
    ctr = _running(env)
    other = _container("c2")
    with pytest.raises(Conflict, match="'c2' is in use by container " + other.id[:12]):
        operations.rename(ctr.name, "c2")
    with pytest.raises(Exception, match="invalid container name '../x'"):
        operations.rename(ctr.name, "../x")
    assert state.lookup("c1").id == ctr.id  # a refused rename changed nothing
    operations.rename("c1", "web")
    assert state.lookup("web").id == ctr.id and state.lookup("web").name == "web"
    with pytest.raises(Exception, match="No such container: c1"):
        state.lookup("c1")
    assert state.reserve("c1")[1] == "c1"  # the old name is free again
    assert operations.status(state.lookup("web"), env) is Status.RUNNING
    (rename,) = [kw for a, _, kw in records if a == "container.rename"]
    assert rename["details"]["old_name"] == "c1" and rename["container_name"] == "web"
