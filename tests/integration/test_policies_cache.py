"""The seccomp compile cache as a user meets it: ~/.cache/secpod, and runs that never depend on it."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _strict_run(user: User, image: str) -> dict[str, object]:
    """Run strict, check the filter is on, return the seccomp summary the audit recorded."""
    r = user.run("run", "--rm", "--profile", "strict", image, "grep", "^Seccomp:",
                 "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^Seccomp:\s+2$", r.stdout, re.M), r.stdout
    created = [rec for rec in audit_records(user) if rec["action"] == "container.create"]
    seccomp = created[-1]["confinement"]["seccomp"]  # type: ignore[index]
    assert isinstance(seccomp, dict)
    return seccomp


def test_the_cache_is_private_and_never_decides(user: User, signed_busybox: str) -> None:
    first = _strict_run(user, signed_busybox)
    assert first["rules"] > 0 and first["bpf_instructions"] > 0  # type: ignore[operator]
    cache = user.home / ".cache" / "secpod"
    entries = list(cache.glob("seccomp-report-*.json"))
    assert len(entries) == 1
    assert cache.stat().st_mode & 0o777 == 0o700
    assert entries[0].stat().st_mode & 0o777 == 0o600
    assert entries[0].stat().st_uid == user.uid

    # A damaged entry is ignored: the run is the same, and the entry is written again.
    entries[0].write_text('{"kind": "seccomp-report", "key": "x", "value": {"rules": 1}}')
    assert _strict_run(user, signed_busybox) == first
    assert json.loads(entries[0].read_text())["value"]["rules"] == first["rules"]

    # A cache folder others can write is not used at all; the run does not mind.
    cache.chmod(0o777)
    entries[0].unlink()
    assert _strict_run(user, signed_busybox) == first
    assert not list(cache.glob("seccomp-report-*.json"))
