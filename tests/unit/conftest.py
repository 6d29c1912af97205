"""Unit tests run as root without subordinate ranges: images unpack in this process
(the owner-keeping child in the containers' user namespace is tested by
tests/integration/test_image_owners.py)."""

from __future__ import annotations

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
