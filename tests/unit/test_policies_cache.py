"""The per-user cache of seccomp compile reports: used when sound, ignored otherwise."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secpod.policies import _cache, confine
from secpod.policies import seccomp as seccomp_mod
from secpod.policies.layers import seccomp as seccomp_layer
from secpod.sandbox.host import CgroupMode, HostFeatures
from secpod.spec import ContainerSpec

HOST = HostFeatures(cgroup_mode=CgroupMode.HYBRID, cgroup_delegated=False,
                    selinux_enabled=False, apparmor_enabled=False,
                    apparmor_profiles=frozenset(), seccomp=True, arch="amd64")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(seccomp_layer, "_REPORTS", {})
    yield tmp_path / "cache" / "secpod"


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the real libseccomp compiles."""
    calls: list[str] = []
    real = seccomp_mod.compile_oci

    def counting(oci: Any, source: str = "seccomp") -> seccomp_mod.SeccompReport:
        calls.append(source)
        return real(oci, source)

    monkeypatch.setattr(seccomp_mod, "compile_oci", counting)
    return calls


def _strict_summary() -> dict[str, Any]:
    seccomp_layer._REPORTS.clear()  # a new process: only the user's cache remembers
    spec = ContainerSpec(image="busybox", profile="strict")
    summary: dict[str, Any] = confine(spec, HOST).summary["seccomp"]
    return summary


def _entry(cache: Path) -> Path:
    entries = sorted(cache.glob("seccomp-report-*.json"))
    assert len(entries) == 1
    return entries[0]


def test_second_run_reads_the_cache(cache: Path, compiles: list[str]) -> None:
    first = _strict_summary()
    assert len(compiles) == 1 and first["rules"] > 0 and first["bpf_instructions"] > 0
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert oct(_entry(cache).stat().st_mode & 0o777) == "0o600"
    assert _strict_summary() == first
    assert len(compiles) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "forged", "rules", "other-key",
                                    "mode"])
def test_a_bad_entry_is_ignored_and_rewritten(cache: Path, compiles: list[str],
                                             damage: str) -> None:
    first = _strict_summary()
    entry = _entry(cache)
    doc = json.loads(entry.read_text())
    if damage == "garbage":
        entry.write_bytes(b"\x00not json")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:40])
    elif damage == "forged":
        doc["value"]["unresolved"] = ["not_a_syscall_in_this_profile"]
        entry.write_text(json.dumps(doc))
    elif damage == "rules":
        doc["value"]["rules"] += 1
        entry.write_text(json.dumps(doc))
    elif damage == "other-key":
        doc["key"] = "0" * 64
        entry.write_text(json.dumps(doc))
    else:
        entry.chmod(0o666)  # writable by others: not the user's word alone
    assert _strict_summary() == first
    assert len(compiles) == 2
    assert json.loads(_entry(cache).read_text())["value"]["rules"] == first["rules"]


def test_an_entry_owned_by_someone_else_is_ignored(cache: Path, compiles: list[str]) -> None:
    first = _strict_summary()
    entry = _entry(cache)
    doc = json.loads(entry.read_text())
    doc["value"]["rules"] = 1
    entry.write_text(json.dumps(doc))
    os.chown(entry, 65534, 65534)  # the suite runs as root: nobody's file now
    assert _strict_summary() == first
    assert len(compiles) == 2


def test_a_symlinked_entry_is_not_followed(cache: Path, compiles: list[str],
                                           tmp_path: Path) -> None:
    first = _strict_summary()
    entry = _entry(cache)
    elsewhere = tmp_path / "elsewhere.json"
    doc = json.loads(entry.read_text())
    doc["value"]["rules"] = 1
    elsewhere.write_text(json.dumps(doc))
    entry.unlink()
    entry.symlink_to(elsewhere)
    assert _strict_summary() == first
    assert len(compiles) == 2


def test_a_folder_others_can_write_is_not_used(cache: Path, compiles: list[str]) -> None:
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    _strict_summary()
    _strict_summary()
    assert len(compiles) == 2
    assert not list(cache.iterdir())


def test_cache_functions_survive_an_unusable_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    _cache.put("k", "a" * 64, {"x": 1})
    assert _cache.get("k", "a" * 64) is None


@pytest.mark.parametrize("profile", ["strict", "default"])
def test_recounting_agrees_with_a_compile(profile: str) -> None:
    oci = confine(ContainerSpec(image="busybox", profile=profile), HOST).linux["seccomp"]
    report = seccomp_mod.compile_oci(oci, profile)
    assert seccomp_mod.resolution(oci) == (report.rules, report.unresolved)
