"""The volume store without containers: names, create, find, remove, prune, and the
destination checks a run's volumes get (secpod/sandbox/volumes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secpod.errors import Conflict, MalformedInput, NotFound, UsageError
from secpod.sandbox import volumes
from secpod.spec import Mount


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "secpod"


def _audit(store: Path) -> list[tuple[str, str, str]]:
    lines = (store / "audit" / "log.jsonl").read_text().splitlines()
    return [(r["action"], r["outcome"], r["details"]["volume"])
            for r in map(json.loads, lines) if r["action"].startswith("volume.")]


@pytest.mark.parametrize("name", ["a", "A1", "my_vol.1-x", "9" * 128])
def test_names(name: str) -> None:
    assert volumes.check_name(name) == name


@pytest.mark.parametrize("name,why", [
    ("", "is empty"), ("a/b", "is not a volume name"), ("..", "is not a volume name"),
    (".hidden", "is not a volume name"), ("-x", "is not a volume name"),
    ("a b", "is not a volume name"), ("a\n", "is not a volume name"),
    ("x" * 129, "is longer than 128 characters"),
])
def test_bad_names(name: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        volumes.check_name(name)


def test_create_find_remove(store: Path) -> None:
    vol, made = volumes.create("data", [("team", "qa")])
    assert made and vol.mountpoint == store / "volumes" / "data" / "_data"
    assert vol.mountpoint.is_dir() and oct(vol.mountpoint.stat().st_mode & 0o777) == "0o755"
    assert volumes.create("data") [1] is False                 # as Docker: no error
    assert volumes.create("data", [("team", "qa")])[1] is False
    with pytest.raises(Conflict, match="exists, with other labels"):
        volumes.create("data", [("team", "ops")])
    assert volumes.get("data").labels == {"team": "qa"}
    assert [v.name for v in volumes.all_volumes()] == ["data"]
    assert volumes.name_of(str(vol.mountpoint / "sub")) == "data"
    assert volumes.name_of(str(store / "volumes" / "data")) is None
    assert volumes.name_of("/etc") is None
    info = vol.inspect(["web"])
    assert (info["Name"], info["Driver"], info["UsedBy"]) == ("data", "local", ["web"])
    (vol.mountpoint / "f").write_text("x")
    assert volumes.remove("data") > 0
    assert not (store / "volumes" / "data").exists()
    with pytest.raises(NotFound, match="No such volume: data") as e:
        volumes.remove("data")
    assert e.value.hint and "secpod volume ls" in e.value.hint
    assert volumes.remove("data", force=True) == 0
    with pytest.raises(UsageError):
        volumes.create("a/b")
    assert _audit(store) == [("volume.create", "ok", "data"),
                             ("volume.create", "refused", "data"),
                             ("volume.rm", "ok", "data"), ("volume.rm", "refused", "data"),
                             ("volume.create", "refused", "a/b")]


def test_prune_removes_the_unused_and_leftovers(store: Path) -> None:
    for name in ("b", "a"):
        volumes.create(name)
    (store / "volumes" / ".rm-old-1").mkdir()                  # a killed rm's leftover
    pruned = volumes.prune()
    assert pruned.removed == ["a", "b"] and not pruned.failed
    assert sorted(p.name for p in (store / "volumes").iterdir()) == [".lock"]


def test_prepare_checks_destinations_and_makes_what_is_missing(store: Path,
                                                             tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "real").mkdir(parents=True)
    (root / "real" / "seed").write_text("from the image")
    (root / "link").symlink_to("/real")
    with pytest.raises(MalformedInput, match="is a symbolic link in the image") as e:
        volumes.prepare([Mount("volume", "/v", "new1"), Mount("tmpfs", "/link/x")], root, "c")
    assert e.value.hint == "mount at /real/x instead: secpod does not mount through links"
    assert volumes.all_volumes() == []                         # new1 made, then removed
    made = volumes.prepare([Mount("volume", "/real", "seeded"),
                            Mount("volume", "/real", "bare", nocopy=True)], root, "c")
    assert made == ["seeded", "bare"]
    assert (volumes.get("seeded").mountpoint / "seed").read_text() == "from the image"
    assert list(volumes.get("bare").mountpoint.iterdir()) == []
    with pytest.raises(UsageError, match="volume-subpath logs is not a folder"):
        volumes.prepare([Mount("volume", "/d", "seeded", subpath="logs")], root, "c")
    (volumes.get("seeded").mountpoint / "logs").symlink_to("/etc")
    with pytest.raises(UsageError, match="symbolic link on the way"):
        volumes.prepare([Mount("volume", "/d", "seeded", subpath="logs")], root, "c")
    assert volumes.prepare([Mount("volume", "/d", "seeded")], root, "c") == []
    volumes.discard_made(["seeded", "bare"])
    assert volumes.all_volumes() == []
