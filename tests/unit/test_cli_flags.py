"""Boolean flags are flags: alone they mean true, --LONG=false turns them off, and none
takes the next word as its value."""

from __future__ import annotations

import pytest

from secpod import cli


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return cli.build_parser(argv[0]).parse_args(list(argv))


@pytest.mark.parametrize("flag, dest", [("--rm", "auto_remove"), ("--detach", "detach"),
                                        ("--interactive", "interactive"), ("--tty", "tty"),
                                        ("--read-only", "read_only")])
def test_run_flags_take_false_and_never_the_next_word(flag: str, dest: str) -> None:
    on = parse("run", flag, "busybox", "true")
    assert getattr(on, dest) is True and on.image == "busybox" and on.command == ["true"]
    assert getattr(parse("run", f"{flag}=false", "busybox"), dest) is False
    assert getattr(parse("run", f"{flag}=1", "busybox"), dest) is True


def test_short_flags_still_combine() -> None:
    args = parse("run", "-dit", "busybox")
    assert (args.detach, args.interactive, args.tty) == (True, True, True)
    assert parse("exec", "-it", "box", "sh").tty is True


@pytest.mark.parametrize("command", [["pull"], ["push", "local:1"]])
def test_tls_verify_is_a_flag(command: list[str]) -> None:
    ref = "127.0.0.1:5000/x:1"
    assert parse(*command, ref).tls_verify is True
    assert parse(*command, "--tls-verify=false", ref).tls_verify is False
    # `--tls-verify IMAGE` is the flag and the image, not a value "IMAGE"
    args = parse(*command, "--tls-verify", ref)
    assert args.tls_verify is True and ref in vars(args).values()


def test_ps_rm_logs_flags_take_false() -> None:
    assert parse("ps", "--all=false").all is False
    assert parse("rm", "--force=true", "box").force is True
    assert parse("logs", "--follow=false", "box").follow is False
