"""Go text/template for --format (secpod/gotemplate.py): expected outputs are Go's and Docker's."""

from __future__ import annotations

import pytest

from secpod._text import printable
from secpod.errors import UsageError
from secpod.gotemplate import compile_template, header_name, is_json_format, render_table

DATA = {
    "Names": "web", "ID": "0123456789abcdef", "Status": "Up 2 minutes",
    "State": {"Status": "running", "Pid": 42},
    "List": [1, 2, "a"], "Map": {"b": 1, "a": None, "c": [True, False]},
    "Big": 1000000.0, "Half": 1.5, "Small": 0.00001, "Null": None, "Empty": "",
    "Zero": 0, "EmptyList": [], "EmptyMap": {}, "Labels": {"app": "x", "tier": "<b>&"},
}


def render(fmt: str, data: object = DATA) -> str:
    return compile_template(fmt).render(data)


def error(fmt: str, data: object = DATA) -> str:
    with pytest.raises(UsageError) as e:
        compile_template(fmt).render(data)
    assert e.value.hint
    return e.value.message


# --- text, fields, variables ---------------------------------------------------------

@pytest.mark.parametrize("fmt, out", [
    ("plain text", "plain text"),
    ("{{.Names}}", "web"),
    ("{{ .Names }}", "web"),
    ("{{.State.Status}}/{{.State.Pid}}", "running/42"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Missing.Deeper}}", "<no value>"),
    ("{{.Null}}", "<no value>"),
    ("{{.}}", "hello"),
    ("{{$}}", "hello"),
    ("{{$.Names}}", "web"),
    ("{{(.State).Status}}", "running"),
    ("{{$x := .State}}{{$x.Status}}", "running"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("a\\tb\\nc", "a\tb\nc"),
    ("  {{.Names}}  ", "web"),
])
def test_fields_and_variables(fmt: str, out: str) -> None:
    data = "hello" if fmt in ("{{.}}", "{{$}}") else DATA
    assert render(fmt, data) == out


def test_go_formatting_of_values() -> None:
    assert render("{{.List}}") == "[1 2 a]"
    assert render("{{.Map}}") == "map[a:<nil> b:1 c:[true false]]"
    assert render("{{.EmptyList}} {{.EmptyMap}}") == "[] map[]"
    assert render("{{.Big}} {{.Half}} {{.Small}}") == "1e+06 1.5 1e-05"
    assert render("{{123456.0}} {{1234567.0}} {{0.0001}}") == "123456 1.234567e+06 0.0001"
    assert render("{{true}} {{false}} {{-3}} {{0x1F}} {{0o17}} {{017}} {{1_000}} {{'a'}}") == \
        "true false -3 31 15 15 1000 97"
    assert render('{{"a\\tb"}} {{`raw\\n`}}') == "a\tb raw\\n"
    assert render("{{print .Null}} {{print nil}}") == "<nil> <nil>"


# --- trim markers and comments --------------------------------------------------------

def test_trim_markers_trim_all_adjacent_whitespace() -> None:
    assert render("a \n\t {{- .Names -}} \n b") == "awebb"
    assert render("a {{- .Names}} b") == "aweb b"
    assert render("a {{.Names -}} \n b") == "a webb"
    assert render("{{-3}}") == "-3"  # a number, not a trim marker
    assert render("x {{- /* gone */ -}} y") == "xy"
    assert render("{{/* a comment */}}z") == "z"
    assert render("{{range .List -}}\n  {{.}}\n{{- end}}") == "12a"


# --- control structures ----------------------------------------------------------------

@pytest.mark.parametrize("fmt, out", [
    ("{{if .Names}}yes{{end}}", "yes"),
    ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
    ("{{if .Zero}}1{{else if .Null}}2{{else if .List}}3{{else}}4{{end}}", "3"),
    ("{{if .EmptyList}}1{{else if .EmptyMap}}2{{else}}3{{end}}", "3"),
    ("{{if .Missing}}1{{else}}0{{end}}", "0"),
    ("{{if false}}1{{else}}0{{end}}{{if 0.0}}1{{else}}0{{end}}", "00"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Missing}}x{{else}}none{{end}}", "none"),
    ("{{with .Null}}x{{else with .State}}{{.Pid}}{{end}}", "42"),
    ("{{with $s := .State}}{{$s.Pid}}{{end}}", "42"),
    ("{{if $n := .Names}}{{$n}}{{end}}", "web"),
    ("{{range .List}}[{{.}}]{{end}}", "[1][2][a]"),
    ("{{range $i, $e := .List}}{{$i}}={{$e}} {{end}}", "0=1 1=2 2=a "),
    ("{{range $e := .List}}{{$e}}{{end}}", "12a"),
    ("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "app=x;tier=<b>&;"),
    ("{{range .Map}}{{.}},{{end}}", "<no value>,1,[true false],"),
    ("{{range .EmptyList}}x{{else}}empty{{end}}", "empty"),
    ("{{range .Missing}}x{{else}}none{{end}}", "none"),
    ("{{range .List}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", "1"),
    ("{{range $i, $e := .List}}{{if eq $i 1}}{{continue}}{{end}}{{$e}}{{end}}", "1a"),
    ("{{range .List}}{{$.Names}}{{end}}", "webwebweb"),
])
def test_control_structures(fmt: str, out: str) -> None:
    assert render(fmt) == out


def test_map_range_is_in_sorted_key_order() -> None:
    assert render("{{range $k, $v := .}}{{$k}}{{end}}", {"z": 1, "b": 2, "a": 3}) == "abz"


# --- functions --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, out", [
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 3}} {{or 0 false}}", "0 2 3 false"),
    ("{{and .Null .Names.Missing}}", "<no value>"),  # short-circuits: no error
    ("{{or .Names .Null.X}}", "web"),
    ("{{not 0}} {{not .Names}}", "true false"),
    ("{{len .List}} {{len .Map}} {{len .Names}} {{len \"é\"}}", "3 3 3 2"),
    ("{{index .List 2}} {{index .Map \"b\"}} {{index .Map \"zz\"}}", "a 1 <no value>"),
    ("{{index . \"Map\" \"c\" 0}} {{index .Names 0}}", "true 119"),
    ("{{print 1 2 \"a\" 3 \"b\" \"c\"}}", "1 2a3bc"),
    ("{{println 1 \"a\" .List}}", "1 a [1 2 a]\n"),
    ("{{eq .Names \"web\"}} {{eq 1 2 3 1}} {{eq .Null nil}} {{eq .Names nil}}",
     "true true true false"),
    ("{{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}}",
     "true true true true false"),
    ("{{.Names | upper}}", "WEB"),
    ("{{.Names | printf \"%s!\"}}", "web!"),
    ("{{\"A-b\" | lower | printf \"%q\"}}", '"a-b"'),
    ("{{upper \"straße\"}}", "STRAßE"),
    ("{{title \"hello wide-world o'neil\"}}", "Hello Wide-World O'Neil"),
    ("{{split \"a,b,,c\" \",\"}} {{split \"ab\" \"\"}}", "[a b  c] [a b]"),
    ("{{join .List \", \"}}|{{join .Missing \",\"}}|{{join .Labels \"+\"}}", "1, 2, a||<b>&+x"),
    ("{{join (split \"a b\" \" \") \"-\"}}", "a-b"),
    ("[{{pad .Names 2 1}}][{{pad \"\" 2 2}}]", "[  web ][]"),
    ("{{truncate .ID 12}} {{truncate \"ab\" 5}} {{truncate \"abc\" 3}}", "0123456789ab ab abc"),
    ("{{len (print .List)}}", "7"),
])
def test_functions(fmt: str, out: str) -> None:
    assert render(fmt) == out


@pytest.mark.parametrize("fmt, out", [
    ('{{printf "%s %d %v %t" "a" 5 .List true}}', "a 5 [1 2 a] true"),
    ('{{printf "%q %q" "x\\n\\"y" 65}}', '"x\\n\\"y" \'A\''),
    ('{{printf "%x %X %x %o %b %c %U" 255 255 "hi" 8 5 65 65}}', "ff FF 6869 10 101 A U+0041"),
    ('{{printf "[%5d][%-5d][%05d][%+d][%#x]" 42 42 42 42 255}}',
     "[   42][42   ][00042][+42][0xff]"),
    ('{{printf "[%6s][%-6s][%.2s]" "ab" "ab" "abcd"}}', "[    ab][ab    ][ab]"),
    ('{{printf "%v %f %.2f %e %g %8.3f" 1.5 1.5 3.14159 1234.5 0.000001 2.0}}',
     "1.5 1.500000 3.14 1.234500e+03 1e-06    2.000"),
    ('{{printf "%v %s %d" .Map .Null .Null}}', "map[a:<nil> b:1 c:[true false]] %!s(<nil>) %!d(<nil>)"),
    ('{{printf "%d %s %t" "x" 5 1}}', "%!d(string=x) %!s(int=5) %!t(int=1)"),
    ('{{printf "%d %d"  1}}', "1 %!d(MISSING)"),
    ('{{printf "%d" 1 "x" nil}}', "1%!(EXTRA string=x, <nil>)"),
    ('{{printf "100%%"}}', "100%"),
    ('{{printf "%q" (split "a b" " ")}}', '["a" "b"]'),
    ('{{printf "%*d|%.*f" 4 7 1 2.25}}', "   7|2.2"),
])
def test_printf(fmt: str, out: str) -> None:
    assert render(fmt) == out


def test_json_is_dockers_compact_encoding() -> None:
    data = {"b": 1, "a": [None, True, 1.5, 1000000.0, 1e21, 1e-7],
            "s": "<a&b>\n\t\x01\u2028é\"\\"}
    # Docker's json turns HTML escaping off; keys stay in the dict's (the struct's) order
    assert render("{{json .}}", data) == (
        '{"b":1,"a":[null,true,1.5,1000000,1e+21,1e-7],'
        '"s":"<a&b>\\n\\t\\u0001\\u2028é\\"\\\\"}')
    assert render("{{json .Missing}} {{json .Names}}") == 'null "web"'
    assert render("{{json \"\\b\\f\"}}") == '"\\b\\f"'


def test_the_json_format() -> None:
    assert render("json", {"a": [1]}) == '{"a":[1]}'
    assert is_json_format("json") and is_json_format(" {{json .}} ")
    assert is_json_format("{{ json . }}") and is_json_format("{{- json . -}}")
    assert not is_json_format("{{json .Names}}") and not is_json_format("table json")
    assert not compile_template("json").table


# --- table ------------------------------------------------------------------------------

def test_header_names() -> None:
    assert header_name("Names") == "NAMES"
    assert header_name("CreatedAt") == "CREATED AT"
    assert header_name("ID") == "ID"
    assert header_name("IPAddress") == "IP ADDRESS"
    assert header_name("LocalVolumes") == "LOCAL VOLUMES"
    assert header_name("created_at") == "CREATED AT"


def test_table_headers_come_from_the_last_field_of_each_action() -> None:
    t = compile_template("table {{.Names}}\\t{{.State.Status}}\\t{{.CreatedAt}}\\t"
                         "{{json .Labels}}\\t{{.Names | upper}}\\t{{index .Labels \"app\"}}\\t"
                         "{{pad .ID 1 1}}")
    assert t.table
    assert t.headers == ["NAMES", "STATUS", "CREATED AT", "LABELS", "NAMES", "LABELS", " ID "]
    assert not compile_template("{{.Names}}").table
    assert compile_template("{{.Names}}").headers == []
    assert compile_template("table").headers == []


def test_table_header_overrides_and_literal_text() -> None:
    t = compile_template("table {{.ID}}: {{.Names}}\\t{{printf \"%s/%s\" .A .B}}",
                         header_names={"ID": "CONTAINER ID"})
    assert t.headers == ["CONTAINER ID: NAMES", "A/B"]
    t = compile_template("table {{range .Names}}{{.}}{{end}}\\t{{if .X}}{{.Y}}{{end}}\\t"
                         "{{.Names 1}}\\t{{.}}")
    assert t.headers == ["", "Y", "", ""]  # a failing action says nothing


def test_render_table_aligns_as_dockers_tabwriter() -> None:
    t = compile_template("table {{.Names}}\\t{{.Status}}\\t{{.Image}}")
    rows = [{"Names": "a", "Status": "Up", "Image": "alpine"},
            {"Names": "a-rather-long-name", "Status": "Exited (0)", "Image": "x"}]
    assert render_table(t, rows) == (
        "NAMES                STATUS       IMAGE\n"
        "a                    Up           alpine\n"
        "a-rather-long-name   Exited (0)   x\n")
    # minimum width 10 (padding included), the last cell never padded
    assert render_table(t, []) == "NAMES     STATUS    IMAGE\n"


def test_render_table_wide_characters_and_ragged_rows() -> None:
    t = compile_template("table {{.A}}\\t{{.B}}")
    out = render_table(t, [{"A": "東京東京東京", "B": 1}, {"A": "x", "B": 2}])
    assert out.splitlines()[1] == "東京東京東京   1"
    assert out.splitlines()[2] == "x              2"
    # a line without a tab ends the column block, as in Go's tabwriter
    t = compile_template("table {{.A}}{{if .B}}\\t{{.B}}{{end}}")
    assert render_table(t, [{"A": "long-value-1", "B": "x"}, {"A": "b"}, {"A": "c", "B": "y"}]) \
        == ("A              B\nlong-value-1   x\nb\nc         y\n")


def test_render_table_without_table_prints_rows() -> None:
    t = compile_template("{{.Names}}\\t{{.Status}}")
    assert render_table(t, [{"Names": "a", "Status": "b"}, {"Names": "cc", "Status": "d"}]) == \
        "a\tb\ncc\td\n"


def test_escape_applies_to_values_only() -> None:
    t = compile_template("{{.X}}\\n{{join .L \"\\n\"}}")
    assert t.render({"X": "a\x1b[2Jb", "L": ["1", "2"]},
                    escape=lambda s: printable(s, keep_newlines=True)) == "a\\x1b[2Jb\n1\n2"
    t = compile_template("table {{.X}}")
    assert render_table(t, [{"X": "\x1b]0;x\x07"}], escape=printable) == "X\n\\x1b]0;x\\x07\n"


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, message", [
    ("{{.Names", "template: unclosed action"),
    ("{{if .Names}}x", "template: unexpected EOF"),
    ("{{range .List}}", "template: unexpected EOF"),
    ("{{nope .Names}}", 'template: function "nope" not defined'),
    ("{{.Names }", 'template: unexpected "}" in operand'),
    ("{{.Names}", "template: bad character U+007D '}'"),
    ("{{end}}", "template: unexpected {{end}}"),
    ("{{else}}", "template: unexpected {{else}}"),
    ("{{if 1}}{{else}}{{else}}{{end}}", "template: expected end; found {{else}}"),
    ("{{}}", "template: missing value for command"),
    ("{{if}}{{end}}", "template: missing value for if"),
    ("{{$nope}}", 'template: undefined variable "$nope"'),
    ("{{range $i, $e := .List}}{{end}}{{$e}}", 'template: undefined variable "$e"'),
    ('{{"a" | "b"}}', "template: non executable command in pipeline stage 2"),
    ("{{break}}", "template: {{break}} outside {{range}}"),
    ("{{range .List}}{{break 1}}{{end}}", 'template: unexpected "1" in {{break}}'),
    ("{{/* open", "template: unclosed comment"),
    ("{{/* x */ .}}", "template: comment ends before closing delimiter"),
    ("{{(.Names}}", "template: unclosed left paren"),
    ("{{.Names)}}", "template: unexpected right paren U+0029 ')'"),
    ('{{"open}}', "template: unterminated quoted string"),
    ("{{`open}}", "template: unterminated raw quoted string"),
    ("{{'a}}", "template: unterminated character constant"),
    ("{{3x}}", 'template: bad number syntax: "3x"'),
    ('{{"\\q"}}', "template: invalid syntax"),
    ("{{\"a\".X}}", 'template: unexpected . after term "\\"a\\""'),
    ("{{$x, $y := 1}}", "template: too many declarations in command"),
    ("{{range $a, $b, $c := .List}}{{end}}", "template: too many declarations in range"),
    ("{{range $a, 3}}{{end}}", "template: range can only initialize variables"),
    ("{{$x : 1}}", "template: expected :="),
    ("{{a: 1}}", 'template: function "a" not defined'),
    ("{{.Names ~}}", 'template: unexpected "~" in operand'),
    ("{{define \"x\"}}{{end}}", "template: {{define}} is not supported"),
    ("{{template \"x\"}}", "template: {{template}} is not supported"),
    ("{{end x}}", 'template: unexpected "x" in end'),
])
def test_parse_errors(fmt: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        compile_template(fmt)
    assert e.value.message == message
    assert "line 1" in (e.value.hint or "") and "docs/formatting.md" in (e.value.hint or "")
    assert e.value.exit_code == 2


def test_parse_error_hint_names_the_line() -> None:
    with pytest.raises(UsageError) as e:
        compile_template("a\nb\n{{nope}}")
    assert "line 3" in (e.value.hint or "")


@pytest.mark.parametrize("fmt, message", [
    ("{{.Names.X}}", "template: can't evaluate field X in type string"),
    ("{{.State.Pid.X}}", "template: can't evaluate field X in type int"),
    ("{{.List.X}}", "template: can't evaluate field X in type []interface {}"),
    ("{{.Null.X}}", "template: nil pointer evaluating interface {}.X"),
    ("{{.State 1}}", "template: State is not a method but has arguments"),
    ("{{1 | .State}}", "template: State is not a method but has arguments"),
    ('{{"x" 1}}', 'template: can\'t give argument to non-function "x"'),
    ("{{nil}}", "template: nil is not a command"),
    ("{{(nil).X}}", "template: nil is not a command"),
    ("{{nil.X}}", 'template: unexpected . after term "nil"'),
    ("{{index .List 5}}", "template: error calling index: index out of range: 5"),
    ("{{index .List \"a\"}}", "template: error calling index: cannot index slice/array with type string"),
    ("{{index .Map 1}}", "template: error calling index: value has type int; should be string"),
    ("{{index .Names.Missing 1}}", "template: can't evaluate field Missing in type string"),
    ("{{index .Null 1}}", "template: error calling index: index of untyped nil"),
    ("{{index 3 1}}", "template: error calling index: can't index item of type int"),
    ("{{len 3}}", "template: error calling len: len of type int"),
    ("{{len .Null}}", "template: error calling len: len of nil pointer"),
    ("{{lt 1}}", "template: wrong number of args for lt: want 2 got 1"),
    ("{{not}}", "template: wrong number of args for not: want 1 got 0"),
    ("{{eq}}", "template: wrong number of args for eq: want at least 1 got 0"),
    ("{{printf}}", "template: wrong number of args for printf: want at least 1 got 0"),
    ("{{eq 1}}", "template: error calling eq: missing argument for comparison"),
    ('{{eq 1 "a"}}', "template: error calling eq: incompatible types for comparison"),
    ("{{eq 1 1.0}}", "template: error calling eq: incompatible types for comparison"),
    ("{{eq .List .List}}", "template: error calling eq: non-comparable type [1 2 a]: []interface {}"),
    ("{{lt true false}}", "template: error calling lt: invalid type for comparison"),
    ("{{lt .Null 1}}", "template: error calling lt: invalid type for comparison"),
    ("{{upper 3}}", "template: expected string; found 3"),
    ("{{upper .State.Pid}}", "template: wrong type for value; expected string; got int"),
    ("{{upper .Missing}}", "template: invalid value; expected string"),
    ("{{upper nil}}", "template: cannot assign nil to string"),
    ("{{.State.Pid | upper}}", "template: wrong type for value; expected string; got int"),
    ('{{truncate .Names "2"}}', 'template: expected integer; found "2"'),
    ("{{truncate .Names -1}}", "template: error calling truncate: runtime error: slice bounds out of range [:-1]"),
    ("{{pad .Names -1 0}}", "template: error calling pad: strings: negative Repeat count"),
    ("{{join .Names \",\"}}", "template: error calling join: expected slice, got string"),
    ("{{printf 3}}", "template: expected string; found 3"),
    ("{{json .}}", "template: error calling json: json: unsupported value: NaN"),
    ("{{range .Names}}{{end}}", "template: range can't iterate over web"),
    ("{{range 3}}{{end}}", "template: range can't iterate over 3"),
    ("{{$x := 1}}{{$y = 2}}", "template: undefined variable: $y"),
])
def test_execution_errors(fmt: str, message: str) -> None:
    data = {"x": float("nan")} if fmt == "{{json .}}" else DATA
    assert error(fmt, data) == message


def test_execution_error_hint_names_the_action() -> None:
    with pytest.raises(UsageError) as e:
        compile_template("ok\n{{.Names.X}}").render(DATA)
    assert e.value.hint is not None and "<.Names.X>" in e.value.hint and "line 2" in e.value.hint


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(UsageError) as e:
        compile_template("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}")
    assert e.value.message == "template: the format nests too deeply"


def test_no_eval_exec_or_typing_at_import() -> None:
    import subprocess
    import sys

    code = ("import sys, secpod.gotemplate, secpod.filters; "
            "print(any(m in sys.modules for m in ('typing', 'dataclasses')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import secpod.gotemplate as g

    source = open(g.__file__, encoding="utf-8").read()
    assert "eval(" not in source.replace("_eval", "").replace(".eval", "")
    assert "exec(" not in source
