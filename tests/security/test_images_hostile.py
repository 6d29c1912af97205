"""Hostile image archives against the real CLI, as the unprivileged test user.

The user can write /tmp on the host, so an unpacker that followed a symlink
placed by the image would leave /tmp/evil behind: each escape attempt checks
the host, the exit status, the one-line error, the audit record, and that the
store holds nothing afterwards.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import User

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "images"
L = r"layer \d/\d \([0-9a-f]{12}\)"
ESCAPES = [Path("/tmp/evil"), Path("/evil"), Path("/escape")]  # noqa: S108 - the targets

REFUSED = {
    "dotdot": rf"{L}: entry '\.\./escape' contains '\.\.' \(escapes the root\)",
    "absolute": rf"{L}: entry '/etc/evil' has an absolute path \(escapes the root\)",
    "symlink-same-layer": rf"{L}: entry 'link/evil' goes through the symlink /link",
    "symlink-two-layers": rf"{L}: entry 'link/evil' goes through the symlink /link",
    "hardlink-outside": rf"{L}: hardlink 'pw' -> target '\.\./\.\./\.\./etc/passwd' contains",
    "hardlink-through-symlink": rf"{L}: hardlink 'pw' -> target 'link/passwd' goes through",
    "long-name": rf"{L}: entry 'a+'\.\.\. path too long",
    "zstd-bomb": rf"{L}: compression ratio above 1024:1",
    "truncated-gzip": rf"{L}: corrupt or truncated gzip data",
    "truncated-tar": rf"{L}: truncated tar",
    "wrong-digest": r"layer 1/1 sha256:[0-9a-f]{64}: content is sha256:",
    "wrong-size": r"layer 1/1 sha256:[0-9a-f]{64}: \d+ bytes, its descriptor says \d+",
    "wrong-diff-id": rf"{L}: uncompressed content is sha256:",
    "unknown-compression": rf"{L}: unknown layer compression",
    "garbage-manifest": r"manifest is not valid JSON",
    "empty-index": r"index\.json lists no manifests",
    "missing-blob": r"blob sha256:[0-9a-f]{64} is missing from the layout",
}


def audit(user: User) -> list[dict[str, Any]]:
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def store_files(user: User) -> list[Path]:
    root = user.home / "data" / "secpod" / "images"
    return [p for sub in ("blobs", "unpacked", "tmp") for p in (root / sub).rglob("*")]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_archive_refused(user: User, case: str) -> None:
    for path in ESCAPES:
        assert not path.exists(), f"{path} exists before the test: remove it"
    proc = user.run("image", "import", str(CORPUS / f"{case}.tar"), "--name", f"hostile:{case}")
    assert proc.returncode == 1
    first, hint = proc.stderr.splitlines()[-2:]
    assert re.match(r"secpod: error: " + REFUSED[case], first), proc.stderr
    assert hint.startswith("hint: ")
    for path in ESCAPES:
        assert not path.exists(), f"the image wrote {path} on the host"
    assert store_files(user) == []
    entry = audit(user)[-1]
    assert (entry["action"], entry["outcome"]) == ("image.import", "error")
    assert entry["reason"] == first.removeprefix("secpod: error: ")
    assert user.run("image", "ls", "-q", check=True).stdout == ""


def test_gzip_bomb_bounded_by_env(user: User) -> None:
    user.env["SECPOD_MAX_UNPACK_BYTES"] = str(1 << 20)
    proc = user.run("image", "import", str(CORPUS / "gzip-bomb.tar"))
    assert proc.returncode == 1
    assert "would take the unpacked size above 1048576 bytes (SECPOD_MAX_UNPACK_BYTES)" \
        in proc.stderr
    assert store_files(user) == []


def test_neutralised_as_unprivileged_user(user: User) -> None:
    for case in ("setuid", "device-node", "foreign-owner", "readonly-dirs"):
        proc = user.run("image", "import", str(CORPUS / f"{case}.tar"), "--name", f"n:{case}")
        assert proc.returncode == 0, proc.stderr
    info = {case: json.loads(user.run("image", "inspect", f"n:{case}", check=True).stdout)[0]["Secpod"]
            for case in ("setuid", "device-node", "foreign-owner", "readonly-dirs")}
    su = Path(info["setuid"]["rootfs"]) / "bin" / "su"
    assert stat.S_IMODE(su.stat().st_mode) == 0o755 and su.stat().st_uid == user.uid
    assert info["setuid"]["unpack_report"]["setuid_stripped"] == 2
    assert info["device-node"]["unpack_report"]["devices_skipped"] == 1
    assert info["foreign-owner"]["unpack_report"]["foreign_owners"] == 2
    ro = Path(info["readonly-dirs"]["rootfs"])
    assert stat.S_IMODE((ro / "locked").stat().st_mode) == 0
    # a 0000 directory in an image does not stop its owner from removing the image
    for case in info:
        assert user.run("image", "rm", f"n:{case}").returncode == 0
    assert [p for p in store_files(user) if not p.is_dir()] == []


def test_store_is_private_to_its_user(user: User, user2: User, busybox: str) -> None:
    root = user.home / "data" / "secpod" / "images"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    proc = user2.sh(["ls", str(root)])
    assert proc.returncode != 0
    assert user2.run("image", "inspect", busybox).returncode == 1


# Images whose paths lead out of their root at run time: a WorkingDir climbing out
# through a missing directory, and /etc a symlink through a missing directory (the
# passwd lookup and the mount points under /etc). Enough ".." to reach / from the store.
UP = "/".join([".."] * 16)
RUN_ESCAPES = {
    "workdir-dotdot": ({"workdir": f"/a/{UP}/tmp/secpod-wd-escape"}, None),
    "etc-through-missing": ({"user": "evil"}, f"missing/{UP}/tmp/secpod-etc-escape"),
}


@pytest.mark.crun
@pytest.mark.userns
@pytest.mark.parametrize("case", sorted(RUN_ESCAPES))
def test_image_paths_stay_inside_the_root_at_run(user: User, tmp_path: Path, case: str) -> None:
    import shutil
    import subprocess
    import tempfile

    from secpod.images.build import busybox_rootfs, write_layout
    from tests.conftest import WORK

    opts, etc_link = RUN_ESCAPES[case]
    target = Path("/tmp/secpod-wd-escape" if "workdir" in opts else "/tmp/secpod-etc-escape")  # noqa: S108
    outside = [target, Path("/tmp/secpod-etc-escape/passwd")]  # noqa: S108
    shutil.rmtree(target, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="hostile-run-", dir=WORK))
    root = busybox_rootfs(dest / "rootfs")
    if etc_link:
        shutil.rmtree(root / "etc", ignore_errors=True)
        (root / "etc").symlink_to(etc_link)
        # a host file the link would reach if it were followed from the host
        target.mkdir()
        (target / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    write_layout(root, dest / "layout", cmd=["true"], **opts)
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    user.run("image", "import", str(dest / "layout"), "--name", f"hostile-run:{case}", check=True)
    proc = user.run("run", "--rm", f"hostile-run:{case}")
    if etc_link:
        # the image has no /etc/passwd of its own: the user is unknown, the host's is not read
        assert proc.returncode == 125, proc.stderr
        assert "user 'evil' is not in the image's /etc/passwd" in proc.stderr
        assert [p.name for p in target.iterdir()] == ["passwd"]
        shutil.rmtree(target)
    else:
        assert proc.returncode == 0, proc.stderr
        assert not outside[0].exists(), f"the image made {outside[0]} on the host"
