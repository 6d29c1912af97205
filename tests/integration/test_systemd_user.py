"""A generated unit under a real ``systemd --user`` manager: started, READY reached
(Type=notify), the container running; stopped, the container removed.

PID 1 here is not systemd and the kernel mounts cgroups in hybrid mode, so the test
makes the manager's world itself, as root, in a mount namespace of its own (never the
host's): cgroup2 mounted at /sys/fs/cgroup (its tree is the host's v2 one, which offers
no memory/pids/cpu controller: they are bound to v1, so secpod's probe enforces no
limits and crun runs with its cgroup manager disabled), a cgroup for the user's manager
made and chowned there, and a tmpfs on /run/systemd with the "booted with systemd"
marker /run/systemd/system. Everything is undone afterwards: the manager and whatever
is left in its cgroup are killed and the cgroups removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SECPOD_BIN, User

pytestmark = [pytest.mark.crun, pytest.mark.userns, pytest.mark.root]

SYSTEMD = "/lib/systemd/systemd"

# Run as root by `unshare -m`: $1 the cgroup to make, $2 the pid file, the rest the
# manager's command line (setpriv ... systemd --user).
ARRANGE = r"""
set -eu
cg=$1; pidfile=$2; shift 2
mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /run/systemd
# size: daemon-reload refuses to run with less than 16M free there
mount -t tmpfs -o mode=0755,size=32m tmpfs /run/systemd
mkdir /run/systemd/system
# the user manager's generators are looked for here too (Quadlet files)
mkdir /run/systemd/user-generators
ln -s "$GENERATOR" /run/systemd/user-generators/secpod-user-generator
mkdir -p "/sys/fs/cgroup/$cg/manager"
chown "$UID_GID" "/sys/fs/cgroup/$cg/manager" "/sys/fs/cgroup/$cg/manager/cgroup.procs" \
  "/sys/fs/cgroup/$cg/manager/cgroup.subtree_control" "/sys/fs/cgroup/$cg/manager/cgroup.threads"
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "/sys/fs/cgroup/$cg/manager" "$@" &
echo $! > "$pidfile"
rc=0; wait $! || rc=$?
echo 1 > "/sys/fs/cgroup/$cg/cgroup.kill"
for _ in $(seq 100); do
  [ -z "$(find "/sys/fs/cgroup/$cg" -name cgroup.procs -exec cat {} +)" ] && break
  sleep 0.1
done
find "/sys/fs/cgroup/$cg" -depth -type d -exec rmdir {} +
echo "manager exited $rc" >&2
"""


@dataclass
class Manager:
    user: User
    pid: int

    def sh(self, argv: list[str], *, check: bool = False,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ARGV as the user inside the manager's mount namespace."""
        cmd = ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", f"--wdns={self.user.home}",
               *self.user.command(argv)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           cwd=str(self.user.home))
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sh(["systemctl", "--user", *args], check=check)

    def secpod(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.sh([str(SECPOD_BIN), *args], check=check)

    def install(self, path: Path) -> Path:
        """Move the unit at ``path`` into the user's unit folder, reload; the folder."""
        home, uid, gid = self.user.home, self.user.uid, self.user.gid
        units = home / "config" / "systemd" / "user"
        for folder in (home / "config", home / "config" / "systemd", units):
            folder.mkdir(exist_ok=True)
            os.chown(folder, uid, gid)
        shutil.move(path, units / path.name)
        self.systemctl("daemon-reload")
        return units


@pytest.fixture
def manager(user: User) -> Iterator[Manager]:
    for tool in (SYSTEMD, shutil.which("systemctl"), shutil.which("nsenter")):
        if not tool or not os.access(tool, os.X_OK):
            pytest.fail(f"{tool or 'systemctl/nsenter'} is missing: apt-get install systemd "
                        "util-linux")
    cg = f"secpod-test-{os.getpid()}-{time.monotonic_ns()}"
    pidfile = user.home.parent / f"{cg}.pid"
    env = dict(os.environ, UID_GID=f"{user.uid}:{user.gid}",
               GENERATOR=str(SECPOD_BIN.parent / "secpod-user-generator"))
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    user.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    helper = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", ARRANGE, "arrange",
         cg, str(pidfile), *user.command([SYSTEMD, "--user"])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    private = Path(user.env["XDG_RUNTIME_DIR"]) / "systemd" / "private"
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and private.exists()):
        if helper.poll() is not None or time.monotonic() > deadline:
            helper.kill()
            out, err = helper.communicate()
            pytest.fail(f"systemd --user did not start: {out}{err}")
        time.sleep(0.1)
    mgr = Manager(user, int(pidfile.read_text()))
    try:
        for _ in range(100):
            state = mgr.systemctl("is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.1)
        yield mgr
    finally:
        os.kill(mgr.pid, signal.SIGTERM)
        try:
            out, err = helper.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(mgr.pid, signal.SIGKILL)
            out, err = helper.communicate(timeout=30)
        pidfile.unlink(missing_ok=True)
        assert helper.returncode == 0, f"tear-down failed: {out}{err}"


def test_a_generated_unit_starts_notifies_stops_and_removes(manager: Manager,
                                                           busybox: str) -> None:
    # the probe inside the manager's delegated cgroup: cgroup v2, writable, but without
    # the controllers limits need (v1 holds them)
    doctor = manager.sh(["systemd-run", "--user", "--wait", "--pipe", "--quiet",
                         str(SECPOD_BIN), "doctor"])
    line = next((ln for ln in (doctor.stdout + doctor.stderr).splitlines()
                 if "cgroups:" in ln), "")
    assert "offers no cpu, memory, pids controller" in line, doctor.stdout + doctor.stderr
    # a container that ends on SIGTERM (a PID 1 without a handler ignores it, is killed
    # after stop's timeout, exits 137 and leaves the unit "failed", as Podman's do)
    manager.secpod("create", "--name", "svc", busybox, "sh", "-c",
                   'trap "exit 0" TERM; while :; do sleep 1; done', check=True)
    made = manager.secpod("generate", "systemd", "--new", "--files", "svc", check=True)
    path = Path(made.stdout.strip())
    manager.secpod("rm", "svc", check=True)
    units = manager.install(path)
    start = manager.systemctl("start", path.name, check=False)
    show = manager.systemctl("show", "-p", "ActiveState,SubState,MainPID,Type",
                             path.name).stdout
    props = dict(ln.split("=", 1) for ln in show.split())
    assert start.returncode == 0, (start.stderr, show)
    assert props["Type"] == "notify"
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    ps = manager.secpod("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout
    assert any(ln.startswith("svc Up") for ln in ps.splitlines()), ps
    info = manager.secpod("inspect", "svc", check=True).stdout
    state = json.loads(info)[0]
    assert state["State"]["Status"] == "running"
    # READY came from the monitor, which systemd takes for the main process
    assert int(props["MainPID"]) == state["Secpod"]["monitor_pid"]
    manager.systemctl("stop", path.name)
    gone = manager.systemctl("show", "-p", "ActiveState,Result,ExecMainCode,ExecMainStatus",
                             path.name).stdout
    status = manager.systemctl("status", path.name, check=False).stdout
    assert "ActiveState=inactive" in gone.split(), (gone, status, (units / path.name).read_text())
    left = manager.secpod("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert "svc" not in left.split(), left


def test_a_quadlet_container_through_the_generator(manager: Manager, busybox: str) -> None:
    user = manager.user
    user.file("config/containers/systemd/web.container", """[Unit]
Description=a Quadlet container under systemd --user

[Container]
ContainerName=web
Image=busybox:latest
Exec=sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'
""")
    # systemd runs secpod-user-generator (from /run/systemd/user-generators) on reload
    manager.systemctl("daemon-reload")
    text = manager.systemctl("cat", "web.service").stdout
    assert "secpod" in text and "Type=notify" in text, text
    start = manager.systemctl("start", "web.service", check=False)
    show = manager.systemctl("show", "-p", "ActiveState,SubState", "web.service").stdout
    assert start.returncode == 0, (start.stderr, show,
                                   manager.systemctl("status", "web.service",
                                                     check=False).stdout)
    assert show.split() == ["ActiveState=active", "SubState=running"], show
    ps = manager.secpod("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout
    assert any(ln.startswith("web Up") for ln in ps.splitlines()), ps
    manager.systemctl("stop", "web.service")
    gone = manager.systemctl("show", "-p", "ActiveState", "web.service").stdout.split()
    assert gone == ["ActiveState=inactive"], gone
    left = manager.secpod("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert "web" not in left.split(), left


def test_the_restart_service_starts_always_containers_at_boot(manager: Manager,
                                                             busybox: str) -> None:
    """As after a reboot: one container stopped by hand (always), one killed with its
    monitor as a power cut kills it (unless-stopped); the enabled secpod-restart.service,
    started by the manager's default.target, starts both; stopping it stops neither."""
    loop = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1; done']
    manager.secpod("run", "-d", "--name", "boot-a", "--restart", "always", busybox, *loop,
                   check=True)
    manager.secpod("run", "-d", "--name", "boot-u", "--restart", "unless-stopped", busybox,
                   *loop, check=True)
    manager.secpod("stop", "boot-a", check=True)
    info = json.loads(manager.secpod("inspect", "boot-u", check=True).stdout)[0]
    for pid in (info["Secpod"]["monitor_pid"], info["State"]["Pid"]):
        os.kill(pid, signal.SIGKILL)
    made = manager.secpod("generate", "systemd", "--restart-service", "--files", check=True)
    path = Path(made.stdout.strip())
    manager.install(path)
    manager.systemctl("enable", path.name)
    # what the manager does at boot: reach default.target, which wants the service
    start = manager.systemctl("start", "default.target", check=False)
    show = manager.systemctl("show", "-p", "ActiveState,Result", path.name).stdout
    assert start.returncode == 0, (start.stderr, show)
    assert sorted(show.split()) == ["ActiveState=active", "Result=success"], (
        show, manager.systemctl("status", path.name, check=False).stdout)
    running = manager.secpod("ps", "--filter", "status=running", "--format", "{{.Names}}",
                             check=True).stdout.split()
    assert sorted(running) == ["boot-a", "boot-u"], running
    manager.systemctl("stop", path.name)
    still = manager.secpod("ps", "--filter", "status=running", "--format", "{{.Names}}",
                           check=True).stdout.split()
    assert sorted(still) == ["boot-a", "boot-u"], still
    manager.secpod("rm", "-f", "boot-a", "boot-u", check=True)
