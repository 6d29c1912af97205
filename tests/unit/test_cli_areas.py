"""The CLI's command table matches what each area registers (lazy imports stay right)."""

from __future__ import annotations

import argparse

from secpod import cli


def _registered(area: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    parsers = cli._area(area).PARSERS
    for add in parsers.values():
        add(sub)
    assert set(parsers) == set(sub.choices), area  # each builder adds the command it is under
    return set(sub.choices)


def test_every_area_registers_exactly_its_commands() -> None:
    for area, commands in cli._AREAS.items():
        assert _registered(area) == set(commands), area


def test_commands_are_unique_across_areas() -> None:
    seen: list[str] = [c for cmds in cli._AREAS.values() for c in cmds]
    assert len(seen) == len(set(seen))


def test_full_parser_knows_every_command() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices.keys()) == {c for cmds in cli._AREAS.values() for c in cmds}


def test_internal_commands_are_not_offered(capsys: object) -> None:
    import pytest

    with pytest.raises(SystemExit):
        cli.main(["frob"])
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "invalid choice: 'frob'" in err and "'run'" in err
    assert "container-cleanup" not in err and "container-prune" not in err
    assert "container-cleanup" not in cli.build_parser().format_help()


def test_command_word_skips_global_flags() -> None:
    assert cli._command_word(["-v", "run", "x"]) == "run"
    assert cli._command_word(["--help"]) is None
    assert cli._command_word([]) is None


def test_one_command_builds_only_its_own_parser() -> None:
    for command in ("run", "ps", "container-cleanup"):
        parser = cli.build_parser(command)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert set(sub.choices.keys()) == {command}
    args = cli.build_parser("run").parse_args(["run", "--rm", "--profile", "strict", "img", "x"])
    assert (args.auto_remove, args.profile, args.image, args.command) == (
        True, "strict", "img", ["x"])


def test_an_unknown_command_still_lists_every_command() -> None:
    parser = cli.build_parser(cli._command_word(["nosuch"]))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices.keys()) == {c for cmds in cli._AREAS.values() for c in cmds}

