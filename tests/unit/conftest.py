"""Unit tests run as root without subordinate ranges: images unpack in this process
(the owner-keeping child in the containers' user namespace is tested by
tests/integration/test_image_owners.py). ``home``: a signing test's own XDG folders,
with no administrator's or system trust policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secpod.images import _mapped
from secpod.images._farm import LocalUnpacker
from secpod.images._unpack import Limits


@pytest.fixture(autouse=True)
def _unpack_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def in_process(limits: Limits, hold: int | None = None) -> Any:
        return LocalUnpacker(limits)

    monkeypatch.setattr(_mapped, "unpacker", in_process)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from secpod.signing import trust

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(trust, "admin_trust_policy", lambda: None)
    monkeypatch.setattr(trust, "SYSTEM_POLICY", tmp_path / "no-system-policy.json")
    return tmp_path
