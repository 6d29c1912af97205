"""doctor's key-quota check: crun gives each container a session keyring."""

from __future__ import annotations

from pathlib import Path

from secpod.sandbox.doctor import keyring_check


def test_room_for_containers_is_ok(tmp_path: Path) -> None:
    f = tmp_path / "key-users"
    f.write_text("    0:    90 89/89 10/1000000 1000/25000000\n"
                 " 1001:     3 3/3 3/200 93/20000\n")
    c = keyring_check(1001, str(f))
    assert c.status == "ok" and "3 of 200" in c.detail and "197" in c.detail


def test_a_nearly_full_quota_warns_with_the_sysctl(tmp_path: Path) -> None:
    f = tmp_path / "key-users"
    f.write_text(" 1001:   195 195/195 195/200 9000/20000\n")
    c = keyring_check(1001, str(f))
    assert c.status == "warn" and "kernel.keys.maxkeys" in (c.hint or "")


def test_an_unreadable_file_is_a_warning(tmp_path: Path) -> None:
    c = keyring_check(1001, str(tmp_path / "missing"))
    assert c.status == "warn" and "cannot read" in c.detail
