"""Unit tests run as root without subordinate ranges: images unpack in this process
(the owner-keeping child in the containers' user namespace is tested by
tests/integration/test_image_owners.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secpod.images import _mapped
from secpod.images._unpack import Limits, Unpacker


@pytest.fixture(autouse=True)
def _unpack_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def in_process(root: Path, limits: Limits) -> Any:
        return Unpacker(root, limits)

    monkeypatch.setattr(_mapped, "unpacker", in_process)
