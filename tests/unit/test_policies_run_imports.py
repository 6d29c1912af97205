"""confine() (what `secpod run` calls) loads no exporter, linter, learner or AppArmor tooling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHECK = """
import json, sys
from secpod import policies
from secpod.sandbox.host import CgroupMode, HostFeatures
from secpod.spec import ContainerSpec
host = HostFeatures(cgroup_mode=CgroupMode.HYBRID, cgroup_delegated=False,
                    selinux_enabled=False, apparmor_enabled=False, apparmor_profiles=frozenset(),
                    seccomp=True, arch="amd64")
policies.confine(ContainerSpec(image="busybox", profile="strict"), host)
print(json.dumps(sorted(sys.modules)))
"""

# One generator module per hardening layer, each on the way of every run.
LAYERS = ("capabilities", "seccomp", "selinux", "apparmor", "namespaces", "mounts", "resources")


def test_confine_loads_only_what_it_uses(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                         check=True)
    loaded = set(json.loads(out.stdout))
    assert "secpod.policies.floor" in loaded  # the floor always decides
    assert {f"secpod.policies.layers.{m}" for m in LAYERS} <= loaded
    assert not loaded & {f"secpod.policies.{m}" for m in
                         ("lint", "export", "apparmor", "learn", "compare")}
    # A built-in profile comes from profiles/parsed.json: no tomllib for strict.
    assert "tomllib" not in loaded
    from secpod import policies

    assert policies.lint_config.__module__ == "secpod.policies.lint"
    assert policies.load_admin_policy.__module__ == "secpod.policies.floor"
