"""Detached containers without a daemon: run -d, ps, logs, exec, stop, kill, rm, start."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

# Each test runs under crun and under runc (the `engine` fixture: the user's secpod.toml).
pytestmark = [pytest.mark.crun, pytest.mark.userns, pytest.mark.usefixtures("engine")]

LOOP = "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"


def ps(user: User, *flags: str) -> list[dict[str, object]]:
    return json.loads(user.run("ps", "--json", *flags, check=True).stdout)


def wait_for(predicate, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_detached_container_survives_the_shell_that_started_it(user: User, busybox: str) -> None:
    # the starting shell exits at once; the container lives on under its monitor
    r = user.sh(["sh", "-c", f"secpod run -d --name bg {busybox} sh -c '{LOOP}'"])
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    rows = ps(user)
    assert [(x["name"], x["status"]) for x in rows] == [("bg", "running")]
    table = user.run("ps", check=True).stdout.splitlines()
    assert " Up " in table[1] and " ago " in table[1], table  # as docker ps says it
    wait_for(lambda: "tick 2" in user.run("logs", "bg").stdout)
    info = json.loads(user.run("inspect", "bg", check=True).stdout)[0]["Secpod"]
    assert info["monitor"] == "conmon" and info["status"] == "running"


def test_exec_runs_confined_like_the_container(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "box", busybox, "sleep", "60", check=True)
    r = user.run(
        "exec",
        "-e",
        "X=1",
        "box",
        "sh",
        "-c",
        "echo $X; grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1"
    assert "00000000800405fb" in lines[1]
    assert r.stdout.count("1") >= 2
    assert user.run("exec", "box", "sh", "-c", "exit 7").returncode == 7
    actions = [x["action"] for x in audit_records(user) if x["action"] == "container.exec"]
    assert len(actions) == 2


def test_stop_sends_term_then_kill_after_timeout(user: User, busybox: str) -> None:
    user.run(
        "run",
        "-d",
        "--name",
        "stubborn",
        busybox,
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
        check=True,
    )
    r = user.run("stop", "-t", "1", "stubborn")
    assert r.returncode == 0, r.stderr
    row = ps(user, "-a")[0]
    assert row["status"] == "exited" and row["exit_code"] == 137
    user.run(
        "run",
        "-d",
        "--name",
        "polite",
        busybox,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        check=True,
    )
    assert user.run("stop", "polite").returncode == 0
    polite = next(x for x in ps(user, "-a") if x["name"] == "polite")
    assert polite["exit_code"] == 0
    exits = [x for x in audit_records(user) if x["action"] == "container.exit"]
    assert {x["container"]["name"]: x["exit_status"] for x in exits} == {
        "stubborn": 137,
        "polite": 0,
    }


def test_kill_rm_and_rm_force(user: User, busybox: str) -> None:
    # PID 1 of a pid namespace ignores signals it has no handler for: trap USR1.
    user.run(
        "run",
        "-d",
        "--name",
        "victim",
        busybox,
        "sh",
        "-c",
        "trap 'exit 10' USR1; while :; do sleep 0.1; done",
        check=True,
    )
    r = user.run("rm", "victim")
    assert r.returncode == 1 and "rm -f" in r.stderr
    assert user.run("kill", "-s", "USR1", "victim").returncode == 0
    wait_for(lambda: ps(user, "-a")[0]["status"] == "exited")
    assert ps(user, "-a")[0]["exit_code"] == 10
    assert user.run("rm", "victim").returncode == 0
    user.run("run", "-d", "--name", "victim2", busybox, "sleep", "60", check=True)
    assert user.run("rm", "-f", "victim2").returncode == 0
    assert ps(user, "-a") == []
    for runtime in ("crun", "runc"):  # no runtime keeps a state of them
        root = user.home / "data" / "secpod" / "run" / runtime
        assert not [p for p in root.iterdir()] if root.exists() else True
    # conmon's attach links go with their containers
    sockets = user.home / "data" / "secpod" / "run" / "sockets"
    assert [p.name for p in sockets.iterdir()] == [] if sockets.exists() else True


def test_run_detached_rm_removes_itself_on_exit(user: User, busybox: str) -> None:
    user.run("run", "-d", "--rm", "--name", "brief", busybox, "sh", "-c", "sleep 0.3", check=True)
    wait_for(lambda: ps(user, "-a") == [])
    actions = [x["action"] for x in audit_records(user) if x["container"]["name"] == "brief"]
    assert actions == ["container.create", "container.start", "container.exit", "container.rm"]


def test_create_then_start_then_restart(user: User, busybox: str) -> None:
    cid = user.run(
        "create", "--name", "later", busybox, "sh", "-c", "echo run", check=True
    ).stdout.strip()
    assert ps(user, "-a")[0]["status"] == "created"
    assert user.run("start", "later").returncode == 0
    wait_for(lambda: ps(user, "-a")[0]["status"] == "exited")
    assert user.run("start", cid[:12]).returncode == 0
    wait_for(lambda: user.run("logs", "later").stdout == "run\nrun\n")


def test_container_not_found(user: User) -> None:
    for cmd in (
        ["stop", "ghost"],
        ["kill", "ghost"],
        ["rm", "ghost"],
        ["logs", "ghost"],
        ["exec", "ghost", "true"],
        ["inspect", "ghost"],
    ):
        r = user.run(*cmd)
        assert r.returncode != 0, cmd
        assert "No such container: ghost" in r.stderr, cmd  # Docker's words, for scripts


def test_logs_follow_returns_when_the_container_exits(user: User, busybox: str) -> None:
    user.run(
        "run", "-d", "--name", "chatty", busybox, "sh", "-c",
        "echo first; sleep 1; echo second >&2; sleep 0.5; echo third",
        check=True,
    )
    r = user.run("logs", "-f", "chatty", timeout=30)
    assert r.returncode == 0
    assert r.stdout == "first\nthird\n"
    assert r.stderr == "second\n"


def test_running_does_not_depend_on_xdg_runtime_dir(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "sleeper", busybox, "sleep", "600", check=True)
    no_runtime = {k: v for k, v in user.env.items() if k != "XDG_RUNTIME_DIR"}
    user.env, saved = no_runtime, user.env
    try:
        assert [(x["name"], x["status"]) for x in ps(user, "-a")] == [("sleeper", "running")]
        r = user.run("rm", "sleeper")
        assert r.returncode == 1
        # one error, printed once, with its hint
        assert r.stderr.count("secpod: error:") == 1 and "rm -f" in r.stderr
        assert [x["name"] for x in ps(user, "-a")] == ["sleeper"]
    finally:
        user.env = saved
    user.env = dict(user.env, XDG_RUNTIME_DIR="/run/user/0")
    assert [x["status"] for x in ps(user)] == ["running"]
    assert user.run("rm", "-f", "sleeper").returncode == 0
    assert ps(user, "-a") == []


def test_unusable_data_dir_is_one_clear_error(user: User) -> None:
    user.env = dict(user.env, XDG_DATA_HOME="/proc")
    r = user.run("image", "ls")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "cannot create /proc/secpod" in r.stderr and "hint:" in r.stderr


def test_two_concurrent_starts_start_it_once(user: User, busybox: str) -> None:
    """The status is decided under the container's lock: of two `start`s of an exited
    container, one starts it and the other says it is already running; before, the second
    deleted (killed) what the first had just started and started it again."""
    import subprocess

    user.run("create", "--name", "twice", busybox, "sh", "-c", "sleep 8", check=True)
    assert user.run("start", "twice").returncode == 0
    user.run("kill", "twice", check=True)
    wait_for(lambda: ps(user, "-a")[0]["status"] == "exited")
    before = len(audit_records(user))
    procs = [user.popen("start", "twice", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    assert any("already running" in err for _, err in results), results
    assert ps(user)[0]["status"] == "running"
    starts = [r for r in audit_records(user)[before:] if r["action"] == "container.start"]
    assert [r["outcome"] for r in starts] == ["ok"], starts
    assert user.run("rm", "-f", "twice").returncode == 0


@pytest.fixture(scope="module")
def many_files_layout() -> object:
    """busybox plus 30,000 small files: the default profile's copy of its root takes long
    enough to signal `run` in the middle of it."""
    import subprocess
    import tempfile
    from pathlib import Path

    from secpod.images.build import busybox_rootfs, write_layout
    from tests.conftest import WORK

    WORK.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="many-files-", dir=WORK))
    root = busybox_rootfs(dest / "rootfs")
    data = root / "data"
    for i in range(300):
        d = data / f"d{i}"
        d.mkdir(parents=True)
        for j in range(100):
            (d / f"f{j}").write_text("x" * 64)
    write_layout(root, dest / "layout", cmd=["/bin/true"])
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest / "layout"


@pytest.mark.parametrize("sig", ["TERM", "HUP", "INT", "KILL"])
def test_a_signal_during_set_up_leaves_a_listed_container_or_nothing(
        user: User, many_files_layout: object, sig: str) -> None:
    import signal
    import subprocess

    user.run("image", "import", str(many_files_layout), "--name", "many:1", check=True)
    containers = user.home / "data" / "secpod" / "containers"
    proc = user.popen("run", "--rm", "--name", "stuck", "--profile", "default", "many:1",
                      "sleep", "5", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # signal it while it sets up (the folder and its upper/ exist, maybe no record yet):
    # an overlay root makes that a few milliseconds, so it is stopped the moment the
    # folder shows, signalled, and let go on (setpriv execs secpod: the pid is secpod's)
    deadline = time.monotonic() + 60
    while not (containers.exists() and any((c / "upper").exists() for c in
                                           containers.iterdir() if c.name != "names")):
        assert time.monotonic() < deadline and proc.poll() is None
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.Signals["SIG" + sig])
    os.kill(proc.pid, signal.SIGCONT)
    proc.wait(timeout=60)
    listed = ps(user, "-a")  # the next command sweeps what a SIGKILL left
    assert listed == [] or [c["name"] for c in listed] == ["stuck"]
    if listed:
        assert user.run("rm", "-f", "stuck").returncode == 0
    assert [p.name for p in containers.iterdir()] in ([], ["names"])
    assert list((containers / "names").iterdir()) == []
    # the name is free again
    # (read-only: the shared image root, no second copy of 30,000 files)
    assert user.run("create", "--name", "stuck", "--read-only", "many:1",
                    "true").returncode == 0
    if sig == "KILL":
        if not listed:  # killed before its record was written: the sweep audits it
            assert any(r["action"] == "container.create.abandoned"
                       for r in audit_records(user))
    else:  # caught: it says why it stopped and exits 128 + N
        assert proc.returncode == 128 + signal.Signals["SIG" + sig], proc.returncode


def test_a_container_the_runtime_lost_is_still_running_by_its_recorded_pid(
        user: User, busybox: str, engine: str) -> None:
    """Whether a container runs does not rest on the runtime's state alone: with the
    runtime's state of it gone, its recorded pid (checked against pid reuse) still says
    it runs."""
    import os
    import shutil

    cid = user.run("run", "-d", "--name", "lost", busybox, "sleep", "600",
                   check=True).stdout.strip()
    pid = int((user.home / "data" / "secpod" / "containers" / cid / "pid").read_text())
    shutil.rmtree(user.home / "data" / "secpod" / "run" / engine / cid)
    assert [(c["name"], c["status"]) for c in ps(user, "-a")] == [("lost", "running")]
    r = user.run("rm", "lost")
    assert r.returncode != 0 and "running" in r.stderr, r.stderr
    assert os.path.exists(f"/proc/{pid}")
    assert user.run("rm", "-f", "lost").returncode == 0
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
             open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z", 10)
    assert ps(user, "-a") == []


@pytest.mark.parametrize("how", ["rm", "--rm"])
def test_rm_removes_what_the_container_made_under_subordinate_ids(
        user: User, busybox: str, how: str) -> None:
    """A process running as uid 101 makes a 0700 folder the user cannot delete (as
    nginx's /var/lib/nginx): rm removes it all, inside the user namespace."""
    containers = user.home / "data" / "secpod" / "containers"
    make = "mkdir -p /var/lib/web/cache && touch /var/lib/web/cache/x && chmod 0700 /var/lib/web"
    flags = ["--rm"] if how == "--rm" else ["--name", "web"]
    r = user.run("run", *flags, "--profile", "default", "-u", "101:101", busybox, "sh", "-c",
                 f"mkdir -p /tmp/w && {make.replace('/var/lib', '/tmp/w')}")
    assert r.returncode == 0, r.stderr
    if how == "rm":
        (cid,) = [c.name for c in containers.iterdir() if c.name != "names"]
        made = containers / cid / "upper" / "tmp" / "w" / "web"
        assert made.stat().st_uid == 100000 + 100  # container uid 101: a subordinate id
        r = user.run("rm", "web")
        assert r.returncode == 0, r.stderr
    assert [c.name for c in containers.iterdir() if c.name != "names"] == []
    assert ps(user, "-a") == []


def test_rm_says_so_when_files_remain_and_keeps_the_container(user: User, busybox: str) -> None:
    """What no id the user holds owns (here root's) cannot go: rm fails, names it, and
    the container stays listed for another try."""
    import os
    import shutil

    cid = user.run("create", "--name", "kept", "--profile", "default", busybox, "true",
                   check=True).stdout.strip()
    trap = user.home / "data" / "secpod" / "containers" / cid / "upper" / "roots"
    trap.mkdir()
    (trap / "file").write_text("x")
    os.chmod(trap, 0o700)  # made by root (this test): outside every mapping
    try:
        r = user.run("rm", "kept")
        assert r.returncode != 0
        assert "could not remove" in r.stderr and "roots" in r.stderr, r.stderr
        assert [c["name"] for c in ps(user, "-a")] == ["kept"]
        rm = [x for x in audit_records(user) if x["action"] == "container.rm"][-1]
        assert rm["outcome"] == "error", rm
    finally:
        shutil.rmtree(trap)
    assert user.run("rm", "kept").returncode == 0
    assert ps(user, "-a") == []


def test_a_terminal_closed_while_run_rm_removes_the_container_still_removes_it(
        user: User, many_files_layout: object) -> None:
    """The container ends, `run --rm` removes its 30,000-file root, and the terminal closes
    meanwhile (SIGHUP to secpod, the controlling process): the removal is finished, not
    left half-done with the container listed as exited."""
    import os
    import pty
    import select
    import subprocess

    from tests.conftest import SECPOD_BIN

    user.run("image", "import", str(many_files_layout), "--name", "many:1", check=True)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        user.command(["setsid", "-c", str(SECPOD_BIN), "run", "--rm", "-it", "--profile",
                      "default", "many:1", "sh", "-c", "echo bye"]),
        stdin=slave, stdout=slave, stderr=slave, cwd=str(user.home))
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"bye" not in seen:
        assert time.monotonic() < deadline, seen
        if select.select([master], [], [], 1)[0]:
            seen += os.read(master, 4096)
    os.close(master)  # the terminal goes away as the removal begins
    proc.wait(timeout=60)
    containers = user.home / "data" / "secpod" / "containers"
    assert ps(user, "-a") == []
    assert [c.name for c in containers.iterdir() if c.name != "names"] == []
    assert any(r["action"] == "container.rm" and r["outcome"] == "ok"
               for r in audit_records(user)[-3:])


def test_ctrl_c_three_times_kills_a_foreground_run(user: User, busybox: str) -> None:
    """The first two interrupts are forwarded (a PID 1 without a handler ignores them);
    the third kills the container, and --rm removes it."""
    import signal
    import subprocess

    proc = user.popen("run", "--rm", "--name", "deaf", busybox, "sh", "-c",
                      "trap 'echo got-int' INT; echo ready; while :; do sleep 0.1; done",
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    for _ in range(2):
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "got-int"  # forwarded, handled, still runs
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 137, (proc.returncode, err)
    assert "third interrupt" in err
    assert ps(user, "-a") == []
