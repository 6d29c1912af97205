"""A host that lacks what secpod needs: one clear error, a hint, an audit record, nothing left."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import User, make_user
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


@pytest.fixture
def noids() -> Iterator[User]:
    """A user with no subordinate uid/gid ranges."""
    yield from make_user("secpodnoids")


def _nothing_left(user: User) -> None:
    containers = user.home / "data" / "secpod" / "containers"
    leftovers = [p.name for p in containers.iterdir()] if containers.exists() else []
    assert leftovers in ([], ["names"])
    names = containers / "names"
    assert not names.exists() or not list(names.iterdir())


def test_missing_subordinate_range(noids: User, busybox_layout: Path) -> None:
    noids.run("image", "import", str(busybox_layout), "--name", "busybox:latest", check=True)
    r = noids.run("run", "--rm", "busybox", "true")
    assert r.returncode == 125
    assert "no subordinate uid range for secpodnoids" in r.stderr
    assert "usermod --add-subuids" in r.stderr
    rec = audit_records(noids)[-1]
    assert rec["action"] == "container.run.refused" and rec["reason"].startswith("preflight:")
    _nothing_left(noids)
    doctor = noids.run("doctor")
    assert doctor.returncode == 1 and "no subordinate uid range" in doctor.stdout


def test_missing_crun(user: User, busybox: str) -> None:
    # a PATH with everything a run needs but crun
    bindir = user.home / "bin"
    bindir.mkdir()
    for tool in ("cp", "env", "sh"):
        (bindir / tool).symlink_to(f"/bin/{tool}")
    venv_bin = Path(user.env["PATH"].split(":")[0])
    user.env = dict(user.env, PATH=f"{venv_bin}:{bindir}")
    assert not any((Path(d) / "crun").exists() for d in user.env["PATH"].split(":"))
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode == 125
    assert "crun not found" in r.stderr and "apt-get install crun" in r.stderr
    assert audit_records(user)[-1]["action"] == "container.run.refused"
    _nothing_left(user)


def test_runtime_dir_of_someone_else_is_refused(user: User, busybox: str) -> None:
    # the runtime dir lives in the data dir (never in /tmp, never XDG_RUNTIME_DIR)
    other = user.home / "data" / "secpod" / "run"
    other.mkdir(parents=True)
    os.chown(other, 0, 0)
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode == 125
    assert "not a directory owned by you" in r.stderr
    _nothing_left(user)


def test_doctor_names_overlapping_subordinate_ranges(user: User, tmp_path: Path) -> None:
    """Two users whose ranges overlap (which made every run fail in newgidmap) are named."""
    import subprocess

    from tests.conftest import SECPOD_BIN

    fake = tmp_path / "subgid"
    fake.write_text(f"{user.name}:100000:65536\nsomeoneelse:150000:65536\nbroken line\n")
    fake.chmod(0o644)
    # A private mount namespace of this test only: the host's /etc/subgid is not touched.
    script = f"mount --bind {fake} /etc/subgid && exec " + " ".join(
        f"'{a}'" for a in user.command([str(SECPOD_BIN), "doctor"]))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60, cwd=str(user.home))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"users {user.name} and someoneelse share host ids" in r.stdout
    assert "/etc/subgid:3: 'broken line' is not NAME:START:COUNT" in r.stdout
    assert "usermod" in r.stdout
