"""`secpod image import|ls|inspect|tag|rm` run for real, as the unprivileged test user.

Each format is made by the tool people make it with: an OCI layout by
secpod's own builder and by umoci, an oci-archive by tar, a docker-archive
by skopeo. Errors are checked by exit code, message, audit record and an
empty store.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import User


def audit(user: User) -> list[dict[str, Any]]:
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def inspect(user: User, ref: str) -> dict[str, Any]:
    proc = user.run("image", "inspect", ref, check=True)
    data: dict[str, Any] = json.loads(proc.stdout)[0]["Secpod"]
    return data


def store_files(user: User) -> list[str]:
    root = user.home / "data" / "secpod" / "images"
    return sorted(str(p.relative_to(root)) for sub in ("blobs", "unpacked", "tmp")
                  for p in (root / sub).rglob("*") if not p.is_dir())


def test_import_oci_layout_ls_inspect(user: User, busybox_layout: Path) -> None:
    proc = user.run("image", "import", str(busybox_layout), "--name", "busybox:latest")
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71
    assert f"imported busybox:latest ({digest[7:19]})" in proc.stderr
    assert "layer 1/1" in proc.stderr  # progress, on stderr

    ls = user.run("image", "ls", check=True)
    lines = ls.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "CREATED"]
    assert lines[1].split()[:2] == ["busybox:latest", digest[7:19]]
    assert user.run("image", "ls", "-q", check=True).stdout.split() == [digest[7:19]]
    listed = json.loads(user.run("image", "ls", "--json", check=True).stdout)
    assert [i["digest"] for i in listed] == [digest]

    info = inspect(user, "busybox")
    assert info["digest"] == digest
    assert info["names"] == ["docker.io/library/busybox:latest"]
    assert info["config"]["config"]["Cmd"] == ["/bin/sh"]
    assert info["unpack_report"]["devices_skipped"] == 0
    busybox = Path(info["rootfs"]) / "bin" / "busybox"
    assert busybox.stat().st_uid == user.uid  # container root = the user
    assert (Path(info["rootfs"]) / "etc" / "resolv.conf").is_file()
    assert inspect(user, digest[7:19])["digest"] == digest

    entry = audit(user)[-1]
    assert (entry["action"], entry["outcome"]) == ("image.import", "ok")
    assert entry["image"] == {"ref": "docker.io/library/busybox:latest", "digest": digest}
    assert entry["uid"] == user.uid


def test_oci_archive_made_by_tar(user: User, busybox_layout: Path) -> None:
    user.sh(["tar", "-C", str(busybox_layout), "-cf", str(user.home / "bb.tar"), "."],
            check=True)
    proc = user.run("image", "import", str(user.home / "bb.tar"), "--name", "bb:tar", "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    layout_digest = json.loads((busybox_layout / "index.json").read_text())[
        "manifests"][0]["digest"]
    assert rec["digest"] == layout_digest
    assert rec["familiar_names"] == ["bb:tar"]
    assert audit(user)[-1]["details"]["format"] == "oci-archive"


def test_docker_archive_made_by_skopeo(user: User, busybox_layout: Path) -> None:
    archive = user.home / "docker.tar"
    user.sh(["skopeo", "--insecure-policy", "copy", f"oci:{busybox_layout}:latest",
             f"docker-archive:{archive}:example.com/tools/bb:skopeo"], check=True)
    proc = user.run("image", "import", str(archive))
    assert proc.returncode == 0, proc.stderr
    info = inspect(user, "example.com/tools/bb:skopeo")
    layout_config = json.loads(
        (busybox_layout / "blobs" / "sha256" / _config_digest(busybox_layout)[7:]).read_text())
    assert info["config"]["rootfs"]["diff_ids"] == layout_config["rootfs"]["diff_ids"]
    assert (Path(info["rootfs"]) / "bin" / "busybox").is_file()
    assert audit(user)[-1]["details"]["format"] == "docker-archive"


def _config_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" /
                           index["manifests"][0]["digest"][7:]).read_text())
    digest: str = manifest["config"]["digest"]
    return digest


def test_oci_layout_made_by_umoci(user: User) -> None:
    layout, bundle = user.home / "umoci", user.home / "bundle"
    user.sh(["umoci", "init", "--layout", str(layout)], check=True)
    user.sh(["umoci", "new", "--image", f"{layout}:latest"], check=True)
    user.sh(["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)],
            check=True)
    user.sh(["mkdir", "-p", str(bundle / "rootfs" / "bin")], check=True)
    user.sh(["cp", "/bin/busybox", str(bundle / "rootfs" / "bin" / "busybox")], check=True)
    user.sh(["umoci", "repack", "--image", f"{layout}:latest", str(bundle)], check=True)
    proc = user.run("image", "import", str(layout))
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.strip()
    # umoci's ref is a bare tag: the image has no name until it is given one
    assert user.run("image", "ls", check=True).stdout.splitlines()[1].split()[:2] == [
        "<none>", digest[7:19]]
    user.run("image", "tag", digest[7:19], "umoci/busybox:1", check=True)
    info = inspect(user, "umoci/busybox:1")
    assert (Path(info["rootfs"]) / "bin" / "busybox").stat().st_size == \
        Path("/bin/busybox").stat().st_size


def test_tag_rm_and_name_clash(user: User, busybox: str) -> None:
    first = inspect(user, busybox)["digest"]
    user.run("image", "tag", busybox, "mine:1", check=True)
    assert sorted(inspect(user, "mine:1")["familiar_names"]) == ["busybox:latest", "mine:1"]
    # another image takes the name busybox:latest: the name moves, and stderr says so
    clash = user.run("image", "import", str(other_image(user)), "--name", "busybox:latest")
    assert clash.returncode == 0, clash.stderr
    second = clash.stdout.strip()
    assert second != first
    assert f"name busybox:latest moved from image {first[7:19]} to {second[7:19]}" \
        in clash.stderr
    assert inspect(user, "mine:1")["digest"] == first
    assert inspect(user, "busybox:latest")["digest"] == second
    rm = user.run("image", "rm", "mine:1")
    assert rm.returncode == 0, rm.stderr
    assert rm.stdout.splitlines() == ["untagged: mine:1", f"deleted: {first}"]
    assert user.run("image", "inspect", first).returncode == 1
    assert Path(inspect(user, "busybox:latest")["rootfs"]).is_dir()


def other_image(user: User) -> Path:
    """A second image (its own layer): busybox's layout rebuilt with another Cmd."""
    from tests.imagekit import busybox_layout

    dest = user.home / "other-layout"
    busybox_layout(dest, cmd=["/bin/true"])
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(dest)], check=True)
    return dest


def test_rm_refused_while_a_container_uses_it(user: User, busybox: str) -> None:
    created = user.run("create", "--name", "holder", busybox, "true")
    assert created.returncode == 0, created.stderr
    rm = user.run("image", "rm", busybox)
    assert rm.returncode == 1
    assert "secpod: error: image busybox:latest is used by containers: holder" in rm.stderr
    assert "secpod image rm -f" in rm.stderr
    assert (audit(user)[-1]["action"], audit(user)[-1]["outcome"]) == ("image.rm", "refused")
    assert inspect(user, busybox)["names"]
    forced = user.run("image", "rm", "-f", busybox)
    assert forced.returncode == 0, forced.stderr
    assert user.run("image", "inspect", busybox).returncode == 1


def test_unknown_image(user: User) -> None:
    proc = user.run("image", "inspect", "nothere:1")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "secpod: error: no such image: nothere:1",
        "hint: `secpod image ls` lists your images; `secpod image import PATH` adds one"]
    rm = user.run("image", "rm", "nothere:1")
    assert rm.returncode == 1
    entry = audit(user)[-1]
    assert (entry["action"], entry["outcome"], entry["reason"]) == (
        "image.rm", "error", "no such image: nothere:1")


@pytest.mark.parametrize("case", ["malformed-layout", "truncated-archive", "not-an-image"])
def test_bad_input(user: User, busybox_layout: Path, case: str) -> None:
    if case == "malformed-layout":
        path = user.home / "bad"
        user.file("bad/oci-layout", '{"imageLayoutVersion": "1.0.0"}')
        user.file("bad/index.json", '{"schemaVersion": 2, "manifests": [')
        message = "secpod: error: index.json is not valid JSON ("
    elif case == "truncated-archive":
        user.sh(["tar", "-C", str(busybox_layout), "-cf", str(user.home / "full.tar"), "."],
                check=True)
        data = (user.home / "full.tar").read_bytes()
        path = user.file("cut.tar", data[: len(data) // 2])
        message = f"secpod: error: {path}: not a readable tar archive (unexpected end of data)"
    else:
        path = user.file("notes.txt", "hello\n")
        message = f"secpod: error: {path} is not a tar archive"
    proc = user.run("image", "import", str(path), "--name", "bad:1")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(message), proc.stderr
    assert proc.stderr.splitlines()[1].startswith("hint: ")
    entry = audit(user)[-1]
    assert (entry["action"], entry["outcome"]) == ("image.import", "error")
    assert entry["reason"] and message.removeprefix("secpod: error: ")[:20] in entry["reason"]
    assert store_files(user) == []


def test_disk_saved_by_a_shared_base(user: User, busybox: str) -> None:
    """A committed image shares busybox's layer: the store keeps it once, and `system df`,
    `system df -v`, `image ls` and `image prune` say so (docs/adr/0010-shared-layers.md)."""
    from secpod.images import human_size

    r = user.run("run", "--name", "w", busybox, "sh", "-c", "echo added > /etc/added")
    assert r.returncode == 0, r.stderr
    r = user.run("commit", "w", "mine:1")
    assert r.returncode == 0, r.stderr
    listed = {i["names"][0]: i for i in json.loads(user.run("image", "ls", "--json",
                                                            check=True).stdout)}
    base, mine = listed["docker.io/library/busybox:latest"], listed["docker.io/library/mine:1"]
    # Shared: the base layer's blob, and its unpacked tree (linked by both rootfs).
    layer = base["layers"][0]["size"] + base["unpacked_layers"][0][1]
    assert mine["layers"][0] == base["layers"][0]
    assert mine["unpacked_layers"][0] == base["unpacked_layers"][0]

    def alone(i: dict[str, Any]) -> int:
        return int(i["size"]) + sum(n for _d, n in i["unpacked_layers"])

    assert (base["shared_size"], mine["shared_size"]) == (layer, layer)
    assert mine["unique_size"] == alone(mine) - layer

    rows = [json.loads(line) for line in
            user.run("system", "df", "--format", "json", check=True).stdout.splitlines()]
    images = next(row for row in rows if row["Type"] == "Images")
    assert images["RawSaved"] == layer
    assert images["RawSize"] == alone(base) + alone(mine) - layer
    assert images["RawReclaimable"] == alone(mine) - layer  # busybox is w's image

    verbose = user.run("system", "df", "-v", check=True).stdout.splitlines()
    assert verbose[0] == "Images space usage:"
    table = {line.split()[0]: line.split() for line in verbose[2:] if line.strip()}
    assert table["NAME"] == ["NAME", "ID", "SIZE", "SHARED", "SIZE", "UNIQUE", "SIZE",
                             "CONTAINERS"]
    assert table["busybox:latest"][2:] == [human_size(alone(base)), human_size(layer),
                                           human_size(alone(base) - layer), "1"]
    assert table["mine:1"][2:] == [human_size(alone(mine)), human_size(layer),
                                   human_size(alone(mine) - layer), "0"]
    assert verbose[-1] == (f"Shared: 1 blob and 1 unpacked layer; the images take "
                           f"{human_size(images['RawSize'])}, {human_size(layer)} less than "
                           f"{human_size(alone(base) + alone(mine))} each alone")
    ls = user.run("image", "ls", "--format", "{{.Name}} {{.SharedSize}} {{.UniqueSize}}",
                  check=True).stdout.splitlines()
    assert f"docker.io/library/mine:1 {human_size(layer)} {human_size(alone(mine) - layer)}" \
        in ls

    pruned = user.run("image", "prune", "-a", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == [mine["digest"], "Total reclaimed space: "
                                          + human_size(alone(mine) - layer)]
    assert user.run("image", "verify", "--deep", busybox).returncode == 0
    assert user.run("system", "df", "--format", "{{.Saved}}", check=True
                    ).stdout.splitlines()[0] == "0B"
