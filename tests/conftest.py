"""Shared fixtures: the unprivileged user secpod runs as, and the test images.

The suite runs as root inside a private mount namespace (scripts/test-env.sh);
every secpod command under test runs as $SECPOD_TEST_USER through setpriv, with
its own XDG directories, against the real crun. A missing prerequisite fails
the test; nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
STAGE = Path(os.environ.get("SECPOD_STAGE", "/var/tmp/secpod-ci"))
WORK = STAGE / "work"
SECPOD_BIN = Path(sys.executable).parent / "secpod"


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root (make test); secpod runs as the test user under it")


@dataclass
class User:
    """An unprivileged user with private XDG dirs, running the real ``secpod``."""

    name: str
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    @property
    def gid(self) -> int:
        return pwd.getpwnam(self.name).pw_gid

    def command(self, argv: list[str]) -> list[str]:
        envs = [f"{k}={v}" for k, v in sorted(self.env.items())]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--reset-env", "env", "-i", *envs, *argv]

    def run(self, *args: str, input: str | bytes | None = None, timeout: float = 120,
            check: bool = False, text: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``secpod ARGS`` as this user; return the completed process."""
        return self.sh([str(SECPOD_BIN), *args], input=input, timeout=timeout, check=check,
                       text=text)

    def sh(self, argv: list[str], *, input: str | bytes | None = None, timeout: float = 120,
           check: bool = False, text: bool = True) -> subprocess.CompletedProcess[str]:
        """Run any command as this user with its environment."""
        proc = subprocess.run(self.command(argv), input=input, capture_output=True,
                              timeout=timeout, text=text, cwd=str(self.home))
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                                 f"stderr: {proc.stderr}")
        return proc

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command([str(SECPOD_BIN), *args]), cwd=str(self.home),
                                text=True, **kw)  # type: ignore[call-overload]

    def file(self, name: str, content: str | bytes = b"", mode: int = 0o644) -> Path:
        """Write a file the user owns inside its home; return its path."""
        path = self.home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path


def make_user(name: str) -> Iterator[User]:
    _require_root()
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"test user {name} is missing: run the suite through `make test`")
    WORK.mkdir(parents=True, exist_ok=True)
    WORK.chmod(0o755)
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=WORK))
    os.chown(home, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)
    run = home / "run"
    run.mkdir(mode=0o700)
    os.chown(run, pw.pw_uid, pw.pw_gid)
    user = User(name=name, home=home, env={
        "HOME": str(home),
        "USER": name,
        "LOGNAME": name,
        "PATH": f"{SECPOD_BIN.parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_RUNTIME_DIR": str(run),
        "LANG": "C.UTF-8",
    })
    yield user
    # Nothing may outlive the test: remove every container the user left behind.
    ps = user.run("ps", "-a", "-q", timeout=60)
    ids = ps.stdout.split() if ps.returncode == 0 else []
    if ids:
        user.run("rm", "-f", *ids, timeout=120)
    # Monitors of this test only (other suites may run beside this one as the same user).
    subprocess.run(["pkill", "-KILL", "-u", name, "-f", str(home)], check=False)
    _kill_started_in(home, pw.pw_uid)
    shutil.rmtree(home, ignore_errors=True)


def _kill_started_in(home: Path, uid: int) -> None:
    """Kill the user's processes whose environment names ``home`` (Podman's rootless
    pause process, `catatonit -P`, whose command line does not): a test leaves none."""
    marker = f"XDG_RUNTIME_DIR={home}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(marker) or item == marker[:-1] for item in env.split(b"\0")):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture
def user() -> Iterator[User]:
    """The unprivileged test user, with fresh XDG dirs for this test."""
    yield from make_user(os.environ.get("SECPOD_TEST_USER", "secpodtest"))


@pytest.fixture(params=["crun", "runc"])
def engine(request: pytest.FixtureRequest, user: User) -> str:
    """Run the test once per OCI runtime: the user's secpod.toml makes it the default,
    so every command of the test uses it (as `[engine] runtime` does for a user)."""
    folder = user.home / "config" / "secpod"
    for path in (folder.parent, folder):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, user.uid, user.gid)
    user.file("config/secpod/secpod.toml", f'[engine]\nruntime = "{request.param}"\n')
    return str(request.param)


@pytest.fixture
def user2() -> Iterator[User]:
    """A second unprivileged user (multi-user tests)."""
    yield from make_user(os.environ.get("SECPOD_TEST_USER2", "secpodtest2"))


@pytest.fixture(scope="session")
def busybox_layout() -> Path:
    """An OCI layout of a busybox-static image, built by secpod's own code, readable by all."""
    from tests.imagekit import busybox_layout as build

    WORK.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="busybox-layout-", dir=WORK))
    dest.chmod(0o755)
    build(dest / "layout")
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest / "layout"


@pytest.fixture
def busybox(user: User, busybox_layout: Path) -> str:
    """The busybox image imported into ``user``'s store as ``busybox:latest``."""
    user.run("image", "import", str(busybox_layout), "--name", "busybox:latest", check=True)
    return "busybox:latest"


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared: conformance inputs and OCI schemas (read-only)."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the suite reads conformance inputs from ../shared")
    return SHARED
