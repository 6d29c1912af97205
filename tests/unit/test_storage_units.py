"""Pure parts of cp, diff and commit (docs/storage-cp-diff-commit.md): argument splitting, --change,
and the judging of an upper folder over a lower one, with overlay's xattr whiteouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from secpod.errors import Refused, UsageError
from secpod.images.commit import apply_changes
from secpod.sandbox import changes, cp


def test_split_arg_follows_docker() -> None:
    assert cp.split_arg("web:/etc/passwd") == ("web", "/etc/passwd")
    assert cp.split_arg("./a:b") == (None, "./a:b")
    assert cp.split_arg("/abs:path") == (None, "/abs:path")
    assert cp.split_arg("plain") == (None, "plain")


def test_container_names_are_printed_escaped() -> None:
    # a hostile file name must not drive the terminal; bytes that are no UTF-8 show
    assert cp.shown("a\x1b[2Jb\udcff\n") == "a\\x1b[2Jb\\xff\\x0a"


def test_cp_wants_exactly_one_container_side() -> None:
    with pytest.raises(UsageError, match="one of the two paths is CONTAINER:PATH"):
        cp.copy("a", "b")


def test_changes_set_the_config() -> None:
    config: dict[str, object] = {"config": {"Env": ["PATH=/bin", "A=1"]}}
    apply_changes(config, ['CMD ["nginx", "-g", "daemon off;"]', "ENTRYPOINT /start",
                           "ENV A=2 B=x", "ENV C some value", "LABEL team=qa",
                           "EXPOSE 80 53/udp", "USER app", "WORKDIR /srv",
                           "STOPSIGNAL SIGQUIT", 'VOLUME ["/data"]'])
    cfg = config["config"]
    assert cfg == {
        "Cmd": ["nginx", "-g", "daemon off;"], "Entrypoint": ["/bin/sh", "-c", "/start"],
        "Env": ["PATH=/bin", "A=2", "B=x", "C=some value"], "Labels": {"team": "qa"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "User": "app", "WorkingDir": "/srv",
        "StopSignal": "SIGQUIT", "Volumes": {"/data": {}}}


@pytest.mark.parametrize(("line", "message"), [
    ("ONBUILD RUN x", "ONBUILD is not an instruction commit takes"),
    ("CMD", "CMD needs a value"),
    ('CMD ["a", 1]', "not a JSON array of strings"),
    ("LABEL novalue", "write KEY=VALUE"),
])
def test_bad_changes_are_named(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        apply_changes({}, [line])


def _tree(root: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        p = root / rel
        if text is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _tree(lower, {"etc/passwd": "root\n", "etc/group": "g\n", "bin/ls": "ls",
                  "home/app/.profile": "p", "home/app/notes": "n", "var": None})
    _tree(upper, {"etc/passwd": "root\napp\n", "etc/new": "new", "etc/hostname": "",
                  "bin/ls": "", "home/app/fresh": "f", "data/vol": None, "run/x/y": None})
    os.setxattr(upper / "bin" / "ls", "user.overlay.whiteout", b"y")
    os.setxattr(upper / "home" / "app", "user.overlay.opaque", b"y")
    return lower, upper


def test_upper_is_judged_as_docker_diff_shows_it(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    mounts = json.dumps(["/etc/hostname", "/data/vol", "/proc"])
    found = changes.child_changes(str(upper), str(lower), mounts)
    assert found == [
        ["C", "/bin"], ["D", "/bin/ls"], ["C", "/etc"], ["A", "/etc/new"],
        ["C", "/etc/passwd"], ["C", "/home"], ["C", "/home/app"], ["D", "/home/app/.profile"],
        ["A", "/home/app/fresh"], ["D", "/home/app/notes"], ["A", "/run"], ["A", "/run/x"],
        ["A", "/run/x/y"]]
    # /data only leads to a volume's mount point, /etc/hostname is one: no change


def test_the_layer_has_oci_whiteouts_and_no_mount_points(layers: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    lower, upper = layers
    (upper / "etc" / "new").chmod(0o4755)
    target = tmp_path / "layer.tar.gz"
    out = changes.child_layer(str(upper), str(lower), json.dumps(["/etc/hostname"]),
                              str(target))
    data = target.read_bytes()
    assert out["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    plain = gzip.decompress(data)
    assert out["diff_id"] == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert out["setuid_stripped"] == 1
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "bin/.wh.ls" in members and "home/app/.wh..wh..opq" in members
    assert "etc/hostname" not in members and "data" in members  # /data is no mount here
    assert members["etc/new"].mode == 0o755
    assert members["home/app/fresh"].isfile() and "home/app/notes" not in members


def test_a_failed_layer_leaves_no_file(layers: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = layers
    os.mkfifo(upper / "etc" / "pipe")
    (upper / "etc" / "sock").symlink_to("nowhere")
    target = tmp_path / "layer.tar.gz"
    os.setxattr(upper / "etc", "user.overlay.opaque", b"n")
    # a device cannot be made here unprivileged: a socket stands for what a layer refuses
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(upper / "etc" / "s"))
    try:
        with pytest.raises(Refused, match="device or socket"):
            changes.child_layer(str(upper), str(lower), "[]", str(target))
    finally:
        s.close()
    assert not target.exists()
