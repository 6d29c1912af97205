"""Docker's other run/create flags (secpod.spec.flags.add_docker_run_flags): each
value's form, the refusals, and what the resources layer and inspect make of them."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from secpod.errors import UsageError
from secpod.spec import ContainerSpec, Resources
from secpod.spec import flags as f
from tests.unit.test_spec_flags import parse


def test_defaults_change_nothing() -> None:
    spec = parse("img")
    assert (spec.labels, spec.init, spec.stop_signal, spec.stop_timeout, spec.pull,
            spec.platform, spec.tls_verify) == ((), False, None, None, "missing", None, True)
    r = spec.resources
    assert (r.memory_swap, r.cpus, r.ulimits) == (None, None, ())


def test_a_docker_command_line(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# c\na=file\nb=2\n")
    spec = parse("-l", "a=flag", "--label", "c", "--label-file", str(labels), "--init",
                 "--stop-signal", "hup", "--stop-timeout", "3", "--ulimit", "nofile=10:20",
                 "--pull", "never", "--platform", "Linux/AMD64", "-m", "1g",
                 "--memory-swap", "2g", "--cpus", "0.5", "--tls-verify=false",
                 "-a", "stdout", "-a", "stderr", "--sig-proxy=true", "img")
    assert spec.labels == (("a", "flag"), ("b", "2"), ("c", ""))
    assert (spec.init, spec.stop_signal, spec.stop_timeout) == (True, "SIGHUP", 3)
    assert (spec.pull, spec.platform, spec.tls_verify) == ("never", "linux/amd64", False)
    assert spec.resources.ulimits == (("nofile", 10, 20),)
    assert (spec.resources.memory_swap, spec.resources.cpus) == (2 << 30, 0.5)
    assert parse("-m", "1g", "--memory-swap", "-1", "img").resources.memory_swap == -1
    assert parse("--stop-signal", "9", "img").stop_signal == "9"


@pytest.mark.parametrize(("argv", "message"), [
    (["--privileged"], "--privileged is refused"),
    (["--sig-proxy=false"], "--sig-proxy=false is refused"),
    (["-a", "stdout"], "cannot leave one out"),
    (["-a", "err"], "-a/--attach 'err': not a stream"),
    (["-a", "stdin", "-a", "stdout", "-a", "stderr"], "-a stdin needs -i"),
    (["--replace"], "--replace needs --name"),
    (["--label", "a b=1"], "invalid label 'a b=1' (--label)"),
    (["--stop-signal", "NOPE"], "--stop-signal: unknown signal 'NOPE'"),
    (["--stop-timeout", "-1"], "--stop-timeout '-1'"),
    (["--memory-swap", "1g"], "--memory-swap needs -m/--memory"),
    (["-m", "2g", "--memory-swap", "1g"], "is below -m 2g"),
    (["--cpus", "0"], "--cpus '0'"),
    (["--cpus", "9999"], "--cpus '9999'"),
    (["--platform", "amd64"], "invalid --platform 'amd64'"),
    (["--ulimit", "nofile"], "invalid --ulimit 'nofile'"),
    (["--ulimit", "bogus=1"], "invalid --ulimit 'bogus=1'"),
    (["--ulimit", "nofile=2:1"], "need 0 <= soft <= hard"),
    (["--ulimit", "nofile=a"], "the limits are numbers"),
])
def test_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse(*argv, "img")
    assert message in e.value.message


def test_attach_with_detach_is_refused() -> None:
    with pytest.raises(UsageError, match="-a/--attach and -d conflict"):
        parse("-a", "stdout", "-a", "stderr", "img", detach=True)
    parse("-i", "-a", "stdin", "-a", "stdout", "-a", "stderr", "img")


def test_ulimit_above_your_own_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f.parse_ulimit(f"nofile={hard}") == ("nofile", hard, hard)
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(UsageError, match="the hard limit is above yours"):
            f.parse_ulimit(f"nofile=1:{hard + 1}")
        with pytest.raises(UsageError, match="the hard limit is above yours"):
            f.parse_ulimit("nofile=-1")


def test_ulimits_replace_the_profiles_and_a_looser_one_is_a_weakening() -> None:
    from secpod.policies import profile as pm
    from secpod.policies.confine import weakenings
    from secpod.policies.layers.resources import run_rlimits

    strict = pm.load("strict")
    spec = ContainerSpec(image="x", resources=Resources(
        ulimits=(("nofile", 100, 2048), ("stack", 1, 2))))
    rl = dict((n, (s, h)) for n, s, h in run_rlimits(strict, spec))
    assert rl["nofile"] == (100, 2048) and rl["stack"] == (1, 2) and rl["core"] == (0, 0)
    weak = [w for w in weakenings(strict, spec) if w.flag == "ulimit"]
    assert [w.detail for w in weak] == ["nofile hard limit 2048, above the profile's 1024"]
    tighter = ContainerSpec(image="x", resources=Resources(ulimits=(("nofile", 1, 512),)))
    assert not [w for w in weakenings(strict, tighter) if w.flag == "ulimit"]


def test_cpus_and_swap_in_the_oci_config_or_recorded_unenforced() -> None:
    from secpod.policies import profile as pm
    from secpod.policies.layers import resources
    from secpod.sandbox.host import CgroupMode, HostFeatures

    prof = pm.load("default")
    spec = ContainerSpec(image="x", resources=Resources(memory=1 << 20, memory_swap=2 << 20,
                                                        cpus=1.5))
    host = HostFeatures(CgroupMode.V2, True, False, False, frozenset(), True, "amd64",
                        frozenset({"cpu", "memory", "pids"}))
    frag = resources.generate(prof, spec, host)
    res = frag.linux["resources"]
    assert res["memory"] == {"limit": 1 << 20, "swap": 2 << 20}
    assert (res["cpu"]["quota"], res["cpu"]["period"]) == (150_000, 100_000)
    none = HostFeatures(CgroupMode.V2, False, False, False, frozenset(), True, "amd64")
    frag = resources.generate(prof, spec, none)
    assert "resources" not in (frag.linux or {})
    assert any(u.startswith("cpus 1.5: ") for u in frag.unenforced)
    assert any(u.startswith("memory+swap limit 2097152 bytes: ") for u in frag.unenforced)


def test_inspect_host_config_limits() -> None:
    from secpod.sandbox.views import _resources

    assert _resources({"memory": 5, "memory_swap": 9, "cpus": 0.25, "pids": 7,
                       "cpu_shares": 3}) == {"Memory": 5, "MemorySwap": 9,
                                             "NanoCpus": 250_000_000, "CpuShares": 3,
                                             "PidsLimit": 7}
    assert _resources({})["NanoCpus"] == 0


def test_init_is_catatonit_before_the_command(tmp_path: Path) -> None:
    from secpod.sandbox import init

    (tmp_path / "run").mkdir()
    config = {"mounts": [], "process": {"args": ["sh", "-c", "x"]}}
    init.add_to(config, tmp_path)
    assert config["process"]["args"] == ["/run/podman-init", "--", "sh", "-c", "x"]
    assert config["mounts"] == [{"destination": "/run/podman-init", "type": "bind",
                                 "source": str(init.find()),
                                 "options": ["bind", "ro", "nosuid", "nodev"]}]
    assert (tmp_path / "run" / "podman-init").is_file()
