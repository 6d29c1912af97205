"""``start`` and ``exec`` run only the bundle ``create`` wrote.

The user owns the container's folder, so ``bundle/config.json`` can be edited
between ``create`` and ``start``: an edit that adds CAP_SYS_ADMIN and drops
seccomp must be refused and audited, never run as an ordinary start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _config(user: User, cid: str) -> Path:
    return user.home / "data" / "secpod" / "containers" / cid / "bundle" / "config.json"


def _loosen(path: Path) -> None:
    """What a user would do to get out of the profile: all of CAP_SYS_ADMIN, no seccomp."""
    config = json.loads(path.read_text())
    for kind in ("bounding", "effective", "permitted"):
        config["process"].setdefault("capabilities", {}).setdefault(kind, []).append(
            "CAP_SYS_ADMIN")
    config["linux"].pop("seccomp", None)
    path.write_text(json.dumps(config))


def _wait_exited(user: User, name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = json.loads(user.run("ps", "-a", "--json", check=True).stdout)
        if any(r["name"] == name and r["status"] == "exited" for r in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} did not exit")


def test_start_refuses_an_edited_bundle_and_audits_it(user: User, signed_busybox: str) -> None:
    cid = user.run("run", "-d", "--profile", "strict", "--name", "tight", signed_busybox,
                   "true", check=True).stdout.strip()
    _wait_exited(user, "tight")
    create = next(r for r in audit_records(user) if r["action"] == "container.create")
    recorded = create["details"]["config_digest"]  # type: ignore[index]
    assert isinstance(recorded, str) and recorded.startswith("sha256:")
    # An untouched bundle starts again.
    assert user.run("start", "tight").returncode == 0
    _wait_exited(user, "tight")

    path = _config(user, cid)
    _loosen(path)
    before = len(audit_records(user))
    r = user.run("start", "tight")
    assert r.returncode != 0
    assert f"{path} has changed since create" in r.stderr
    assert f"create recorded {recorded}" in r.stderr
    assert "secpod rm tight and create the container again" in r.stderr
    new = audit_records(user)[before:]
    assert [(x["action"], x["outcome"]) for x in new] == [("container.start", "refused")]
    assert "bundle: " in str(new[0]["reason"])
    assert "has changed since create" in str(new[0]["reason"])
    rows = json.loads(user.run("ps", "-a", "--json", check=True).stdout)
    assert [(x["name"], x["status"]) for x in rows] == [("tight", "exited")]

    # Rewriting the digest the record keeps does not make the start look ordinary: the
    # start record names the new digest, which the create record (and the host log's copy
    # of it, where the collector runs) does not.
    record = path.parent.parent / "container.json"
    data = json.loads(record.read_text())
    assert data["config_digest"] == recorded
    import hashlib

    data["config_digest"] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    record.write_text(json.dumps(data))
    assert user.run("start", "tight").returncode == 0
    start = [x for x in audit_records(user) if x["action"] == "container.start"][-1]
    assert start["details"]["config_digest"] != recorded  # type: ignore[index]


def test_exec_takes_its_process_from_the_checked_bundle(user: User, busybox: str) -> None:
    cid = user.run("run", "-d", "--name", "box", busybox, "sleep", "60",
                   check=True).stdout.strip()
    try:
        ok = user.run("exec", "box", "true")
        assert ok.returncode == 0, ok.stderr
        _loosen(_config(user, cid))
        before = len(audit_records(user))
        r = user.run("exec", "box", "grep", "CapEff", "/proc/self/status")
        assert r.returncode != 0
        assert "has changed since create" in r.stderr
        assert r.stdout == ""
        new = audit_records(user)[before:]
        assert [(x["action"], x["outcome"]) for x in new] == [("container.exec", "refused")]
    finally:
        user.run("rm", "-f", "box")


def test_a_bind_source_swapped_for_a_symlink_after_create_is_refused(
        user: User, busybox: str) -> None:
    """`create -v ~/share:/data` is checked against the profile; replacing ~/share with a
    symlink to /etc before `start` must not mount /etc."""
    import os

    share = user.home / "share"
    share.mkdir()
    os.chown(share, user.uid, user.gid)
    user.run("create", "--name", "swapped", "-v", f"{share}:/data", busybox, "ls", "/data",
             check=True)
    share.rename(user.home / "share.real")
    os.symlink("/etc", share)
    r = user.run("start", "swapped")
    assert r.returncode != 0
    assert "bind mount source" in r.stderr and "/etc" in r.stderr, r.stderr
    starts = [x for x in audit_records(user) if x["action"] == "container.start"]
    assert starts[-1]["outcome"] == "refused", starts[-1]
    share.unlink()
    (user.home / "share.real").rename(share)
    assert user.run("start", "swapped").returncode == 0
