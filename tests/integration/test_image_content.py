"""Issue 10: a signed image edited in the user's store after verification does not run."""

from __future__ import annotations

import json

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records


def _unpacked(user: User) -> str:
    images = user.home / "data" / "secpod" / "images"
    (one,) = [p for p in (images / "unpacked").iterdir() if p.is_dir()]
    return str(one)


def _blob(user: User, which: str) -> str:
    images = user.home / "data" / "secpod" / "images"
    index = json.loads((images / "index.json").read_text())
    digest = index["names"]["docker.io/library/busybox:latest"]
    manifest = json.loads((images / "blobs" / "sha256" / digest[7:]).read_text())
    d = manifest["config"]["digest"] if which == "config" else manifest["layers"][0]["digest"]
    return str(images / "blobs" / "sha256" / d[7:])


TAMPERS = {
    "config blob": ("config", "printf ' ' >> {blob}", "the config blob was changed"),
    "layer blob": ("layer", "printf 'x' | dd of={blob} bs=1 seek=100 conv=notrunc 2>/dev/null",
                   "the layer 1/1 blob was changed"),
    "content": ("tree", "chmod u+w {root}/etc/passwd && echo evil:x:0:0::/:/bin/sh >> "
                        "{root}/etc/passwd", "/etc/passwd was modified"),
    "chmod": ("tree", "chmod 4755 {root}/bin/busybox", "/bin/busybox mode changed"),
    "add": ("tree", "chmod u+w {root}/etc && echo x > {root}/etc/added", "/etc/added was added"),
    "remove": ("tree", "chmod u+w {root}/etc && rm -f {root}/etc/passwd",
               "/etc/passwd was removed"),
    "symlink": ("tree", "chmod u+w {root}/etc && rm -f {root}/etc/passwd && "
                        "ln -s /proc/self/environ {root}/etc/passwd",
                "/etc/passwd was replaced: file -> symlink"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_a_changed_signed_image_is_refused(user: User, signed_busybox: str, kind: str) -> None:
    target, cmd, named = TAMPERS[kind]
    assert user.run("run", "--rm", "--profile", "strict", signed_busybox, "true").returncode == 0
    root = _unpacked(user) + "/rootfs"
    blob = _blob(user, "config" if target == "config" else "layer")
    user.sh(["sh", "-c", cmd.format(root=root, blob=blob)], check=True)
    proc = user.run("run", "--rm", "--profile", "strict", signed_busybox, "true")
    assert proc.returncode == 125, proc.stderr
    assert named in proc.stderr, proc.stderr
    assert "secpod image verify --deep" in proc.stderr
    refused = [r for r in audit_records(user) if r["action"] == "container.run.refused"]
    assert refused and str(refused[-1]["reason"]).startswith("content: ")
    assert user.run("image", "verify", signed_busybox).returncode == 1


def test_an_unedited_image_runs_and_verifies_deep(user: User, signed_busybox: str) -> None:
    proc = user.run("run", "--rm", "--profile", "strict", signed_busybox, "true")
    assert proc.returncode == 0, proc.stderr
    create = [r for r in audit_records(user) if r["action"] == "container.create"][-1]
    imported = [r for r in audit_records(user) if r["action"] == "image.import"][-1]
    content = imported["details"]["content"]  # type: ignore[index]
    assert str(content).startswith("sha256:")
    assert create["trust"]["content"] == content  # type: ignore[index]
    deep = user.run("image", "verify", "--deep", signed_busybox)
    assert deep.returncode == 0, deep.stderr
    assert user.run("run", "--rm", "--profile", "strict", signed_busybox, "true").returncode == 0
