"""lint_config (CIS container-runtime items), profile lint, and the exporters (real tools)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from secpod._record import replace
from secpod.errors import MalformedInput
from secpod.policies import confine, lint_config, lint_profile, load, load_file
from secpod.policies import export as ex
from secpod.policies import seccomp as sc
from secpod.sandbox.host import CgroupMode, HostFeatures
from secpod.spec import Security
from tests.unit.test_policies_confine import _validator, spec

LIMITS = frozenset({"cpu", "memory", "pids"})

REPO = Path(__file__).resolve().parents[2]
BASE_CIL = REPO / "tests/assets/policies/base.cil"
HOST = HostFeatures(cgroup_mode=CgroupMode.HYBRID, cgroup_delegated=False,
                    selinux_enabled=False, apparmor_enabled=False,
                    apparmor_profiles=frozenset(), seccomp=True, arch="amd64")
IDEAL = replace(HOST, cgroup_mode=CgroupMode.V2, cgroup_delegated=True,
    cgroup_controllers=LIMITS, selinux_enabled=True,
                apparmor_enabled=True, apparmor_profiles=frozenset({"secpod-strict"}))


def ids(findings: list) -> set[str]:
    return {f.id for f in findings}


def privileged_config() -> dict:
    """What `podman run --privileged --pid=host --network=host -v /:/host` would write."""
    from secpod.policies.capabilities import ALL_CAPS

    caps = list(ALL_CAPS)
    return {
        "ociVersion": "1.0.2",
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                    "capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]},
                   {"destination": "/var/run/docker.sock", "type": "bind",
                    "source": "/var/run/docker.sock", "options": ["bind", "rshared"]}],
        "linux": {"namespaces": [{"type": "mount"}]},
    }


def test_privileged_config_findings() -> None:
    findings = lint_config(privileged_config())
    assert {"CIS-5.3", "CIS-5.4", "CIS-5.5", "CIS-5.9", "CIS-5.15", "CIS-5.16", "CIS-5.19",
            "CIS-5.20", "CIS-5.21", "CIS-5.25", "CIS-5.30", "CIS-5.31"} <= ids(findings)
    by_id = {f.id: f for f in findings}
    assert by_id["CIS-5.4"].severity == "high" and by_id["CIS-5.5"].severity == "high"
    assert "CAP_SYS_ADMIN" in by_id["CIS-5.3"].detail
    assert findings[0].severity == "high"       # sorted by severity


def test_strict_config_on_a_capable_host_is_clean() -> None:
    config = ex.oci_config(confine(spec("strict"), IDEAL))
    assert lint_config(config) == []
    assert lint_config(config, "strict") == []


def test_strict_config_here_reports_what_this_host_cannot_enforce() -> None:
    config = ex.oci_config(confine(spec("strict"), HOST))
    assert ids(lint_config(config)) == {"CIS-5.1", "CIS-5.2", "CIS-5.10", "CIS-5.11",
                                        "CIS-5.24", "CIS-5.28"}


def test_config_checked_against_a_profile() -> None:
    config = ex.oci_config(confine(spec("default"), IDEAL))
    found = ids(lint_config(config, "strict"))
    assert {"PROFILE-capabilities", "PROFILE-seccomp", "PROFILE-read-only-root",
            "PROFILE-rlimits"} <= found
    assert "PROFILE-capabilities" not in ids(lint_config(config, "default"))


def test_malformed_config() -> None:
    with pytest.raises(MalformedInput, match="JSON object"):
        lint_config([])  # type: ignore[arg-type]
    with pytest.raises(MalformedInput, match="'mounts' must be a list"):
        lint_config({"mounts": {}})


def test_lint_profile() -> None:
    assert lint_profile(load("strict")) == []
    assert {"CIS-5.12", "CIS-5.10"} <= ids(lint_profile(load("default")))


def test_lint_profile_file(tmp_path: Path) -> None:
    f = tmp_path / "wide.toml"
    f.write_text('extends = "strict"\n[process]\ncapabilities = ["SYS_ADMIN"]\n'
                 'no_new_privileges = false\n[seccomp]\nprofile = "unconfined"\n')
    found = {x.id: x.severity for x in lint_profile(load_file(f))}
    assert found == {"CIS-5.3": "high", "CIS-5.21": "high", "CIS-5.25": "high"}


# --- exports ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["strict", "default"])
def test_apparmor_export_passes_apparmor_parser(tmp_path: Path, name: str) -> None:
    text = ex.apparmor(load(name))
    assert f"profile secpod-{name} " in text and "deny mount," in text
    assert "deny network raw," in text and "deny network packet," in text
    proc = subprocess.run(["apparmor_parser", "-Q", "-K"], input=text, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    broken = text.replace("deny mount,", "deny mount")
    proc = subprocess.run(["apparmor_parser", "-Q", "-K"], input=broken, capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0          # the check is a real check


@pytest.mark.parametrize("name", ["strict", "default"])
def test_selinux_cil_export_compiles_with_secilc(tmp_path: Path, name: str) -> None:
    module = tmp_path / f"secpod_{name}.cil"
    module.write_text(ex.selinux_cil(load(name)))
    out = tmp_path / "policy.bin"
    proc = subprocess.run(["secilc", "-o", str(out), "-f", str(tmp_path / "fc"),
                           str(BASE_CIL), str(module)],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
    caps = "(cap_userns (chown" in module.read_text()
    assert caps == (name == "default")
    module.write_text(module.read_text().replace("(type process)", "(type process"))
    proc = subprocess.run(["secilc", "-o", str(out), "-f", str(tmp_path / "fc"),
                           str(BASE_CIL), str(module)],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode != 0


def test_k8s_export() -> None:
    data = ex.k8s(load("strict"), "amd64")
    pod = data["pod"]
    ctx = pod["spec"]["containers"][0]["securityContext"]
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["seccompProfile"] == {"type": "Localhost",
                                     "localhostProfile": "profiles/secpod-strict.json"}
    assert pod["spec"]["hostUsers"] is False and pod["spec"]["hostNetwork"] is False
    # the seccomp file is one `run --security-opt seccomp=FILE` (and the kubelet) accept
    again = sc.parse(json.dumps(data["seccomp"]), data["seccomp_file"])
    assert again.to_oci("amd64", []) == data["seccomp"]
    default = ex.k8s(load("default"), "amd64")["pod"]["spec"]["containers"][0]
    assert "CHOWN" in default["securityContext"]["capabilities"]["add"]


def test_oci_export_validates(shared: Path) -> None:
    for name in ("strict", "default"):
        config = json.loads(ex.export(load(name), "oci", HOST))
        assert not list(_validator(shared).iter_errors(config))
        assert config["annotations"]["io.secpod.profile"] == name


def test_seccomp_export_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "strict.json"
    f.write_text(ex.export(load("strict"), "seccomp", HOST))
    c = confine(spec("strict", security=Security(seccomp=str(f))), HOST)
    assert c.linux["seccomp"] == confine(spec("strict"), HOST).linux["seccomp"]


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
