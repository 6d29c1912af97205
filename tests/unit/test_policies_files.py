"""write_atomic: the whole file or nothing, and a clear error."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from secpod.errors import Error
from secpod.policies._files import write_atomic


def test_writes_with_the_mode_asked_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "profile"
    target.write_text("old\n")
    write_atomic(target, "new\n", mode=0o644)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile"]


def test_a_folder_that_is_not_there_is_an_error_with_a_hint(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "pod.json"
    with pytest.raises(Error) as e:
        write_atomic(target, "{}\n")
    assert e.value.message.startswith(f"cannot write {target}")
    assert e.value.hint
    assert not target.parent.exists()


def test_a_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()  # a file cannot be renamed over a folder
    (target / "x").write_text("")
    with pytest.raises(Error):
        write_atomic(target, "data\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_parser_failing_with_a_blank_stderr_is_still_a_profile_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod.errors import ProfileError
    from secpod.policies import apparmor

    fake = tmp_path / "apparmor_parser"
    fake.write_text("#!/bin/sh\necho >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(apparmor, "parser", lambda: str(fake))
    with pytest.raises(ProfileError) as e:
        apparmor.check("profile x {}\n", "secpod-x")
    assert e.value.message == "apparmor_parser rejects the profile secpod-x: exit status 3"
