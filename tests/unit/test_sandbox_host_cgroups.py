"""The host probe's cgroup v2 delegation, over fake cgroup trees: a writable cgroup
whose cgroup.controllers lacks memory, pids or cpu enforces no limits (crun then runs
with its cgroup manager disabled), and doctor says which controllers are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from secpod._record import replace
from secpod.policies.layers import resources
from secpod.runtime.crun import CrunRuntime
from secpod.sandbox import doctor, host

V2 = host.CgroupMode.V2
# as /proc/self/cgroup reads on a hybrid host (v1 lines, then the v2 one)
PROC = "9:name=systemd:/\n8:pids:/\n0::/user.slice/user@1001.service\n"
BASE = host.HostFeatures(cgroup_mode=V2, cgroup_delegated=False, selinux_enabled=False,
                         apparmor_enabled=False, apparmor_profiles=frozenset(),
                         seccomp=True, arch="amd64")


def fake_tree(root: Path, controllers: str, *, writable: bool = True) -> Path:
    cg = root / "user.slice" / "user@1001.service"
    cg.mkdir(parents=True)
    (cg / "cgroup.controllers").write_text(controllers + "\n")
    (cg / "cgroup.subtree_control").write_text("")
    if not writable:
        (cg / "cgroup.subtree_control").chmod(0o444)
        cg.chmod(0o555)
    return cg


def test_a_delegated_cgroup_with_every_controller_limits(tmp_path: Path) -> None:
    fake_tree(tmp_path, "cpuset cpu io memory pids")
    delegated, controllers = host.cgroup_delegation(V2, PROC, tmp_path)
    assert delegated and controllers == {"cpuset", "cpu", "io", "memory", "pids"}
    features = replace(BASE, cgroup_delegated=delegated, cgroup_controllers=controllers)
    assert features.can_limit_resources and features.missing_controllers == ()


def test_a_delegated_cgroup_without_the_v1_bound_controllers_limits_nothing(
        tmp_path: Path) -> None:
    # cgroup2 mounted at /sys/fs/cgroup beside v1 hierarchies: only hugetlb is free
    fake_tree(tmp_path, "hugetlb")
    delegated, controllers = host.cgroup_delegation(V2, PROC, tmp_path)
    assert delegated and controllers == {"hugetlb"}
    features = replace(BASE, cgroup_delegated=delegated, cgroup_controllers=controllers)
    assert not features.can_limit_resources
    assert features.missing_controllers == ("cpu", "memory", "pids")
    assert resources._no_limits_reason(features) == (
        "the user's cgroup offers no cpu, memory, pids controller, rootless limits are "
        "not enforced")
    # crun is then called with its cgroup manager disabled
    assert CrunRuntime("crun", tmp_path, "cgroupfs" if features.can_limit_resources
                       else "disabled").extra_global_args() == ["--cgroup-manager=disabled"]


def test_one_missing_controller_is_enough_to_limit_nothing(tmp_path: Path) -> None:
    fake_tree(tmp_path, "cpu memory")
    delegated, controllers = host.cgroup_delegation(V2, PROC, tmp_path)
    features = replace(BASE, cgroup_delegated=delegated, cgroup_controllers=controllers)
    assert delegated and features.missing_controllers == ("pids",)
    assert not features.can_limit_resources


def test_a_cgroup_the_user_cannot_write_is_not_delegated(tmp_path: Path) -> None:
    import os

    fake_tree(tmp_path, "cpu memory pids", writable=False)
    delegated, controllers = host.cgroup_delegation(V2, PROC, tmp_path)
    if os.geteuid() != 0:  # root writes anywhere: access() says so
        assert not delegated
    assert controllers == {"cpu", "memory", "pids"}


@pytest.mark.parametrize("mode", [host.CgroupMode.HYBRID, host.CgroupMode.V1,
                                  host.CgroupMode.NONE])
def test_no_v2_hierarchy_at_the_top_is_never_delegated(tmp_path: Path,
                                                       mode: host.CgroupMode) -> None:
    fake_tree(tmp_path, "cpu memory pids")
    assert host.cgroup_delegation(mode, PROC, tmp_path) == (False, frozenset())


def test_a_missing_cgroup_or_v2_line_is_not_delegated(tmp_path: Path) -> None:
    assert host.cgroup_delegation(V2, PROC, tmp_path) == (False, frozenset())
    assert host.cgroup_delegation(V2, "9:name=systemd:/\n", tmp_path) == (False, frozenset())


def test_doctor_names_the_missing_controllers(monkeypatch: pytest.MonkeyPatch) -> None:
    features = replace(BASE, cgroup_delegated=True, cgroup_controllers=frozenset({"hugetlb"}))
    monkeypatch.setattr(host, "probe", lambda: features)
    check = next(c for c in doctor.run_checks() if c.name == "cgroups")
    assert check.status == "warn"
    assert "offers no cpu, memory, pids controller" in check.detail
    assert "limits are not enforced" in check.detail
