"""Go text/template, the subset Docker's and Podman's ``--format`` use (docs/formatting.md).

``compile_template(text)`` parses a format the way ``docker ps --format`` does: ``json``
means ``{{json .}}``; a leading ``table`` makes the rest a row template whose header line is
derived from the field names; the two-character sequences ``\\t`` and ``\\n`` in the text
between actions become a tab and a newline; spaces around the format are dropped. The
result renders JSON-like data (dict, list, str, int, float, bool, None) as Go would render
the ``map[string]interface{}`` that ``encoding/json`` decodes from the same JSON.

Everything is interpreted: no ``eval``, no ``exec``. Parse and execution errors are
:class:`secpod.errors.UsageError` with Go's wording after ``template: `` (without Go's
``NAME:LINE:COL: executing ...`` prefix; the line and the failing action are in the hint).
"""

from __future__ import annotations

import re

from secpod.errors import UsageError

__all__ = ["Template", "compile_template", "header_name", "is_json_format", "render_table"]

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time (docs/adr/0004)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, NoReturn

    Tok = tuple[str, Any, int]

_HINT = "docs/formatting.md lists what --format accepts"
_SPACE = " \t\r\n"


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Go's invalid reflect.Value: a missing map key (and a nil from a pipeline); prints <no value>.
_MISSING: Any = _Sentinel("<no value>")
# "no final argument" in a pipeline (Go's missingVal).
_NOARG: Any = _Sentinel("<no arg>")
# The dot while the header line of a table is rendered: every field of it is its header.
_HEADER: Any = _Sentinel("<header>")


class _Break(Exception):  # noqa: N818 - control flow, as Go's break
    pass


class _Continue(Exception):  # noqa: N818
    pass


class _FuncError(Exception):
    """A function's own error; reported as ``error calling NAME: ...``."""


# --- the lexer ------------------------------------------------------------------------

_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "nil",
             "template", "with"}
_TERMINATORS = " \t\r\n.,|:()"


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _char_name(c: str) -> str:
    """Go's %#U of a rune: U+007D '}'."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


def _right_delim(src: str, k: int) -> int:
    """0 when no right delimiter starts at ``k``; 2 for ``}}``, 4 for `` -}}`` (trimming)."""
    if src.startswith("}}", k):
        return 2
    if k + 1 < len(src) and src[k] in _SPACE and src[k + 1] == "-" and src.startswith("}}", k + 2):
        return 4
    return 0


def _lex(src: str) -> list[Tok]:
    """The items of ``src``, ending with ``eof`` or, at the first lexical error, ``error``."""
    toks: list[Tok] = []
    i, n = 0, len(src)
    while True:
        j = src.find("{{", i)
        end = n if j < 0 else j
        k = j + 2
        trim = j >= 0 and src.startswith("-", k) and k + 1 < n and src[k + 1] in _SPACE
        text = src[i:end]
        if trim:
            text = text.rstrip(_SPACE)
        if text:
            toks.append(("text", text.replace("\\t", "\t").replace("\\n", "\n"), i))
        if j < 0:
            toks.append(("eof", None, n))
            return toks
        if trim:
            k += 2
        if src.startswith("/*", k):
            e = src.find("*/", k + 2)
            if e < 0:
                toks.append(("error", "unclosed comment", j))
                return toks
            d = _right_delim(src, e + 2)
            if not d:
                toks.append(("error", "comment ends before closing delimiter", j))
                return toks
            i = e + 2 + d
            if d == 4:
                i = _skip_space(src, i)
            continue
        toks.append(("ldelim", "{{", j))
        i = _lex_action(src, k, toks)
        if i < 0:
            return toks


def _skip_space(src: str, i: int) -> int:
    while i < len(src) and src[i] in _SPACE:
        i += 1
    return i


def _at_terminator(src: str, k: int) -> bool:
    return k >= len(src) or src[k] in _TERMINATORS or src.startswith("}}", k)


def _lex_action(src: str, k: int, toks: list[Tok]) -> int:
    """Lex one action from ``k``; the index after its ``}}``, or -1 after an error item."""
    n = len(src)
    depth = 0

    def error(message: str) -> int:
        toks.append(("error", message, k))
        return -1

    while True:
        d = _right_delim(src, k)
        if d:
            if depth:
                return error("unclosed left paren")
            toks.append(("rdelim", "}}", k))
            k += d
            return _skip_space(src, k) if d == 4 else k
        if k >= n:
            return error("unclosed action")
        c = src[k]
        start = k
        if c in _SPACE:
            while k < n and src[k] in _SPACE:
                k += 1
            if _right_delim(src, k - 1) == 4:  # the space before " -}}" belongs to it
                k -= 1
            if k > start:
                toks.append(("space", src[start:k], start))
            continue
        if c == "=":
            toks.append(("=", c, k))
            k += 1
        elif c == ":":
            if not src.startswith(":=", k):
                return error("expected :=")
            toks.append((":=", ":=", k))
            k += 2
        elif c == "|":
            toks.append(("|", c, k))
            k += 1
        elif c == "(":
            depth += 1
            toks.append(("(", c, k))
            k += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return error(f"unexpected right paren {_char_name(c)}")
            toks.append((")", c, k))
            k += 1
        elif c == '"' or c == "'":
            k += 1
            while True:
                if k >= n or src[k] == "\n":
                    return error("unterminated quoted string" if c == '"'
                                 else "unterminated character constant")
                if src[k] == "\\":
                    k += 1
                    if k >= n or src[k] == "\n":
                        continue
                elif src[k] == c:
                    break
                k += 1
            k += 1
            toks.append(("string" if c == '"' else "charconst", src[start:k], start))
        elif c == "`":
            e = src.find("`", k + 1)
            if e < 0:
                return error("unterminated raw quoted string")
            k = e + 1
            toks.append(("rawstring", src[start:k], start))
        elif c == "$" or (c == "." and not (k + 1 < n and src[k + 1].isdigit())):
            k += 1
            if _at_terminator(src, k):
                toks.append(("var", "$", start) if c == "$" else ("dot", ".", start))
                continue
            while k < n and _is_alnum(src[k]):
                k += 1
            if not _at_terminator(src, k):
                return error(f"bad character {_char_name(src[k])}")
            toks.append(("var" if c == "$" else "field", src[start:k], start))
        elif c in "+-." or c.isdigit():
            k = _scan_number(src, k)
            if k < n and _is_alnum(src[k]):
                return error(f"bad number syntax: {_goquote(src[start:k + 1])}")
            toks.append(("number", src[start:k], start))
        elif _is_alnum(c):
            while k < n and _is_alnum(src[k]):
                k += 1
            if not _at_terminator(src, k):
                return error(f"bad character {_char_name(src[k])}")
            word = src[start:k]
            if word in _KEYWORDS:
                toks.append((word, word, start))
            elif word in ("true", "false"):
                toks.append(("bool", word == "true", start))
            else:
                toks.append(("ident", word, start))
        elif c.isascii() and c.isprintable():
            toks.append(("char", c, k))
            k += 1
        else:
            return error(f"unrecognized character in action: {_char_name(c)}")


def _scan_number(src: str, k: int) -> int:
    n = len(src)

    def run(k: int, chars: str) -> int:
        while k < n and src[k] in chars:
            k += 1
        return k

    if k < n and src[k] in "+-":
        k += 1
    digits = "0123456789_"
    if src.startswith("0", k):
        k += 1
        if k < n and src[k] in "xX":
            digits, k = "0123456789abcdefABCDEF_", k + 1
        elif k < n and src[k] in "oO":
            digits, k = "01234567_", k + 1
        elif k < n and src[k] in "bB":
            digits, k = "01_", k + 1
    k = run(k, digits)
    if k < n and src[k] == ".":
        k = run(k + 1, digits)
    if len(digits) == 11 and k < n and src[k] in "eE":
        k += 1
        if k < n and src[k] in "+-":
            k += 1
        k = run(k, "0123456789_")
    return k


# --- nodes ----------------------------------------------------------------------------


class _Node:
    __slots__ = ("pos",)
    pos: int

    def __str__(self) -> str:  # pragma: no cover - every node says itself
        return "?"


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text


class _Pipe(_Node):
    __slots__ = ("decl", "is_assign", "cmds")

    def __init__(self, pos: int, decl: list[str], is_assign: bool,
                 cmds: list[list[_Node]]) -> None:
        self.pos, self.decl, self.is_assign, self.cmds = pos, decl, is_assign, cmds

    def __str__(self) -> str:
        s = " | ".join(" ".join(str(a) for a in c) for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ") + s
        return s


class _Paren(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pipe: _Pipe) -> None:
        self.pos, self.pipe = pipe.pos, pipe

    def __str__(self) -> str:
        return f"({self.pipe})"


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        self.pos, self.pipe = pos, pipe

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


class _Control(_Node):
    """if, with and range: a pipeline, a list and an optional else list."""

    __slots__ = ("kind", "pipe", "body", "orelse")

    def __init__(self, kind: str, pos: int, pipe: _Pipe, body: list[_Node],
                 orelse: list[_Node] | None) -> None:
        self.kind, self.pos, self.pipe, self.body, self.orelse = kind, pos, pipe, body, orelse

    def __str__(self) -> str:
        return f"{{{{{self.kind} {self.pipe}}}}}"


class _Word(_Node):
    """break, continue, else, end (the last two only while parsing)."""

    __slots__ = ("word",)

    def __init__(self, pos: int, word: str) -> None:
        self.pos, self.word = pos, word

    def __str__(self) -> str:
        return f"{{{{{self.word}}}}}"


class _Field(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, names: list[str]) -> None:
        self.pos, self.names = pos, names

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


class _Var(_Node):
    __slots__ = ("name", "names")

    def __init__(self, pos: int, name: str, names: list[str]) -> None:
        self.pos, self.name, self.names = pos, name, names

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.names)


class _Chain(_Node):
    __slots__ = ("node", "names")

    def __init__(self, pos: int, node: _Node, names: list[str]) -> None:
        self.pos, self.node, self.names = pos, node, names

    def __str__(self) -> str:
        return str(self.node) + "".join("." + n for n in self.names)


class _Ident(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class _Const(_Node):
    """dot, nil, a bool, a number or a string; ``text`` is how it was written."""

    __slots__ = ("kind", "value", "text")

    def __init__(self, pos: int, kind: str, value: Any, text: str) -> None:
        self.pos, self.kind, self.value, self.text = pos, kind, value, text

    def __str__(self) -> str:
        return self.text


# --- the parser -----------------------------------------------------------------------


def _tok_str(tok: Tok) -> str:
    """An item as Go's parser names it in "unexpected X in Y"."""
    typ, val = tok[0], tok[1]
    if typ == "eof":
        return "EOF"
    if typ in _KEYWORDS:
        return f"<{val}>"
    text = ("true" if val else "false") if typ == "bool" else str(val)
    return _goquote(text[:10]) + "..." if len(text) > 10 else _goquote(text)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _lex(src)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def error(self, message: str, pos: int | None = None) -> NoReturn:
        if pos is None:
            pos = self.toks[max(self.i - 1, 0)][2]
        line = self.src.count("\n", 0, pos) + 1
        raise UsageError(f"template: {message}", hint=f"at line {line} of the format; {_HINT}")

    def next(self) -> Tok:
        tok = self.toks[self.i]
        if tok[0] == "error":
            self.i += 1
            self.error(tok[1], tok[2])
        if tok[0] != "eof":
            self.i += 1
        return tok

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Tok:
        tok = self.next()
        if tok[0] != "eof":
            self.backup()
        return tok

    def next_nonspace(self) -> Tok:
        tok = self.next()
        while tok[0] == "space":
            tok = self.next()
        return tok

    def peek_nonspace(self) -> Tok:
        tok = self.next_nonspace()
        if tok[0] != "eof":
            self.backup()
        return tok

    def unexpected(self, tok: Tok, context: str) -> NoReturn:
        self.error(f"unexpected {_tok_str(tok)} in {context}", tok[2])

    def expect(self, typ: str, context: str) -> Tok:
        tok = self.next_nonspace()
        if tok[0] != typ:
            self.unexpected(tok, context)
        return tok

    def parse(self) -> list[_Node]:
        root: list[_Node] = []
        while self.peek()[0] != "eof":
            n = self.text_or_action()
            if isinstance(n, _Word) and n.word in ("end", "else"):
                self.error(f"unexpected {n}", n.pos)
            root.append(n)
        return root

    def item_list(self) -> tuple[list[_Node], _Node]:
        nodes: list[_Node] = []
        while self.peek_nonspace()[0] != "eof":
            n = self.text_or_action()
            if isinstance(n, _Word) and n.word in ("end", "else"):
                return nodes, n
            nodes.append(n)
        self.error("unexpected EOF", len(self.src))

    def text_or_action(self) -> _Node:
        tok = self.next_nonspace()
        if tok[0] == "text":
            return _Text(tok[2], tok[1])
        if tok[0] == "ldelim":
            return self.action()
        self.unexpected(tok, "input")

    def action(self) -> _Node:
        tok = self.next_nonspace()
        typ, pos = tok[0], tok[2]
        if typ in ("block", "define", "template"):
            self.error(f"{{{{{typ}}}}} is not supported", pos)
        if typ in ("break", "continue"):
            nxt = self.next_nonspace()
            if nxt[0] != "rdelim":
                self.unexpected(nxt, f"{{{{{typ}}}}}")
            if not self.range_depth:
                self.error(f"{{{{{typ}}}}} outside {{{{range}}}}", pos)
            return _Word(pos, typ)
        if typ == "else":
            if self.peek_nonspace()[0] not in ("if", "with"):
                self.expect("rdelim", "else")
            return _Word(pos, "else")
        if typ == "end":
            self.expect("rdelim", "end")
            return _Word(pos, "end")
        if typ in ("if", "range", "with"):
            return self.control(typ, pos)
        self.backup()
        return _Action(pos, self.pipeline("command", "rdelim"))

    def control(self, kind: str, pos: int) -> _Control:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(kind, "rdelim")
            if kind == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if kind == "range":
                self.range_depth -= 1
            orelse: list[_Node] | None = None
            if isinstance(nxt, _Word) and nxt.word == "else":
                if kind in ("if", "with") and self.peek()[0] == kind:
                    tok = self.next()
                    orelse = [self.control(kind, tok[2])]
                else:
                    orelse, nxt = self.item_list()
                    if not (isinstance(nxt, _Word) and nxt.word == "end"):
                        self.error(f"expected end; found {nxt}", nxt.pos)
            return _Control(kind, pos, pipe, body, orelse)
        finally:
            del self.vars[mark:]

    def pipeline(self, context: str, end: str) -> _Pipe:
        pos = self.peek_nonspace()[2]
        decl: list[str] = []
        is_assign = False
        while True:
            before = self.i
            v = self.peek_nonspace()
            if v[0] != "var":
                break
            self.next_nonspace()
            nxt = self.peek_nonspace()
            if nxt[0] in ("=", ":="):
                self.next_nonspace()
                is_assign = nxt[0] == "="
                decl.append(v[1])
                self.vars.append(v[1])
            elif nxt[0] == "char" and nxt[1] == ",":
                self.next_nonspace()
                decl.append(v[1])
                self.vars.append(v[1])
                if context == "range" and len(decl) < 2:
                    if self.peek_nonspace()[0] in ("var", "rdelim", ")"):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            else:
                self.i = before
            break
        cmds: list[list[_Node]] = []
        while True:
            tok = self.next_nonspace()
            if tok[0] == end:
                if not cmds:
                    self.error(f"missing value for {context}", tok[2])
                for stage, cmd in enumerate(cmds[1:], 2):
                    if isinstance(cmd[0], _Const):
                        self.error(f"non executable command in pipeline stage {stage}",
                                   cmd[0].pos)
                return _Pipe(pos, decl, is_assign, cmds)
            if tok[0] in ("bool", "charconst", "dot", "field", "ident", "number", "nil",
                          "rawstring", "string", "var", "("):
                self.backup()
                cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def command(self) -> list[_Node]:
        args: list[_Node] = []
        while True:
            self.peek_nonspace()
            op = self.operand()
            if op is not None:
                args.append(op)
            tok = self.next()
            if tok[0] == "space":
                continue
            if tok[0] in ("rdelim", ")"):
                self.backup()
            elif tok[0] != "|":
                self.unexpected(tok, "operand")
            break
        if not args:
            self.error("empty command")
        return args

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None or self.peek()[0] != "field":
            return node
        names: list[str] = []
        while self.peek()[0] == "field":
            names.append(self.next()[1][1:])
        if isinstance(node, _Field):
            return _Field(node.pos, node.names + names)
        if isinstance(node, _Var):
            return _Var(node.pos, node.name, node.names + names)
        if isinstance(node, _Const):
            self.error(f"unexpected . after term {_goquote(str(node))}", node.pos)
        return _Chain(node.pos, node, names)

    def term(self) -> _Node | None:
        tok = self.next_nonspace()
        typ, val, pos = tok
        if typ == "ident":
            if val not in _FUNCS:
                self.error(f"function {_goquote(val)} not defined", pos)
            return _Ident(pos, val)
        if typ == "dot":
            return _Const(pos, "dot", None, ".")
        if typ == "nil":
            return _Const(pos, "nil", None, "nil")
        if typ == "var":
            if val not in self.vars:
                self.error(f"undefined variable {_goquote(val)}", pos)
            return _Var(pos, val, [])
        if typ == "field":
            return _Field(pos, [val[1:]])
        if typ == "bool":
            return _Const(pos, "bool", val, "true" if val else "false")
        if typ == "number":
            return _Const(pos, "number", self.number(val, pos), val)
        if typ == "charconst":
            s = self.unquote(val, pos)
            if len(s) != 1:
                self.error(f"malformed character constant: {val}", pos)
            return _Const(pos, "number", ord(s), val)
        if typ == "(":
            return _Paren(self.pipeline("parenthesized pipeline", ")"))
        if typ == "string":
            return _Const(pos, "string", self.unquote(val, pos), val)
        if typ == "rawstring":
            return _Const(pos, "string", val[1:-1].replace("\r", ""), val)
        self.backup()
        return None

    def number(self, text: str, pos: int) -> int | float:
        t = text.replace("_", "") if "_" not in (text[:1], text[-1:]) else text
        try:
            body = t.lstrip("+-")
            if re.fullmatch(r"0[0-7]+", body):
                return int(t, 8)
            if not re.search(r"[.eE]", body) or body[:2].lower() == "0x":
                return int(t, 0)
            return float(t)
        except ValueError:
            self.error(f"illegal number syntax: {_goquote(text)}", pos)

    def unquote(self, text: str, pos: int) -> str:
        body = text[1:-1]
        if "\\" not in body:
            return body

        def one(m: re.Match[str]) -> str:
            e = m.group(1)
            if e[0] in _UNESCAPE:
                return _UNESCAPE[e[0]]
            if e[0] in "xuU":
                return chr(int(e[1:], 16))
            return chr(int(e, 8))

        pattern = r"\\([abfnrtv\\'\"]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3})"
        if re.sub(pattern, "", body).count("\\"):
            self.error("invalid syntax", pos)
        try:
            return re.sub(pattern, one, body)
        except ValueError:
            self.error("invalid syntax", pos)


_UNESCAPE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
             "\\": "\\", "'": "'", '"': '"'}


# --- Go's fmt ---------------------------------------------------------------------------


def _gotype(v: Any) -> str:
    """The Go type encoding/json would have decoded ``v`` into (ints stay ints)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if v is None or v is _MISSING:
        return "<nil>"
    return type(v).__name__


def _shortest(x: float) -> tuple[str, int]:
    """The shortest digits that read back as ``x`` (> 0) and the decimal point: 0.DIGITS e DP."""
    s = repr(x)
    mant, _, e = s.partition("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    dp = len(ip) + (int(e) if e else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped.rstrip("0") or "0", dp


def _float_str(x: float, verb: str = "g") -> str:
    """Go's shortest formatting of a float64: fmt's %v (``g``: %e below 1e-4 and from 1e6,
    as strconv does for the shortest precision, so 1000000.0 is 1e+06) or encoding/json's
    (``json``: %e below 1e-6 and from 1e21, the exponent without a leading zero)."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if str(x).startswith("-") else "0"
    sign = "-" if x < 0 else ""
    digits, dp = _shortest(abs(x))
    exp = dp - 1
    if verb == "json":
        use_e = abs(x) < 1e-6 or abs(x) >= 1e21
    else:
        use_e = exp < -4 or exp >= 6
    if use_e:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = f"{abs(exp):02d}" if verb != "json" else str(abs(exp))
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{e}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _sort_key(k: Any) -> tuple[int, Any]:
    if isinstance(k, bool):
        return (0, k)
    if isinstance(k, int | float):
        return (1, k)
    return (2, str(k))


def _sprint(v: Any) -> str:
    """fmt's %v of a JSON-like value."""
    if isinstance(v, str):
        return v
    if v is None or v is _MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float_str(v)
    if isinstance(v, list | tuple):
        return "[" + " ".join(_sprint(e) for e in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{_sprint(k)}:{_sprint(e)}" for k, e in items) + "]"
    if v is _HEADER:
        return ""
    return str(v)


def _goquote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for c in s:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif c in _QUOTE_ESC:
            out.append(_QUOTE_ESC[c])
        elif c < " " or c == "\x7f":
            out.append(f"\\x{ord(c):02x}")
        elif c.isprintable():
            out.append(c)
        else:
            o = ord(c)
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_QUOTE_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
              "\v": "\\v"}


def _sprint_args(args: list[Any], *, line: bool = False) -> str:
    """fmt.Sprint (spaces between operands when neither is a string) or fmt.Sprintln."""
    if line:
        return " ".join(_sprint(a) for a in args) + "\n"
    out: list[str] = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i and not is_string and not prev_string:
            out.append(" ")
        out.append(_sprint(a))
        prev_string = is_string
    return "".join(out)


class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None

    def pad(self, s: str) -> str:
        if self.width is None or len(s) >= self.width:
            return s
        fill = " " * (self.width - len(s))
        return s + fill if self.minus else fill + s


def _bad_verb(verb: str, v: Any) -> str:
    if v is None or v is _MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_gotype(v)}={_sprint(v)})"


def _fmt_int(n: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return spec.pad(chr(n)) if 0 <= n <= 0x10FFFF else spec.pad("\ufffd")
    if verb == "q":
        return spec.pad("'" + _goquote(chr(n))[1:-1].replace("'", "\\'") + "'")
    if verb == "U":
        return spec.pad(f"U+{n:04X}")
    base = {"d": "d", "v": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
    digits = format(abs(n), base)
    if spec.prec is not None:
        digits = "" if spec.prec == 0 and n == 0 else digits.zfill(spec.prec)
    prefix = ""
    if spec.sharp:
        prefix = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}.get(verb, "")
    sign = "-" if n < 0 else "+" if spec.plus else " " if spec.space else ""
    if spec.zero and not spec.minus and spec.prec is None and spec.width is not None:
        digits = digits.zfill(spec.width - len(sign) - len(prefix))
    return spec.pad(sign + prefix + digits)


def _fmt_float(x: float, verb: str, spec: _Spec) -> str:
    if x != x or x in (float("inf"), float("-inf")):
        s = _float_str(x)
        if s == "NaN" and (spec.plus or spec.space):
            s = ("+" if spec.plus else " ") + s
        return spec.pad(s)
    if verb in "vgG" and spec.prec is None:
        s = _float_str(x)
        s = s.upper() if verb == "G" else s
        if x >= 0 and (spec.plus or spec.space):
            s = ("+" if spec.plus else " ") + s
    else:
        sign = "+" if spec.plus else " " if spec.space else ""
        py = {"v": "g", "F": "f"}.get(verb, verb)
        s = format(x, f"{sign}#.{6 if spec.prec is None else spec.prec}{py}" if spec.sharp
                   else f"{sign}.{6 if spec.prec is None else spec.prec}{py}")
    if spec.zero and not spec.minus and spec.width is not None and len(s) < spec.width:
        signed = s[0] in "+- "
        head, body = (s[0], s[1:]) if signed else ("", s)
        return head + body.zfill(spec.width - len(head))
    return spec.pad(s)


def _fmt_str(s: str, verb: str, spec: _Spec) -> str:
    if spec.prec is not None and verb in "sqv":
        s = s[:spec.prec]
    if verb == "q":
        s = _goquote(s)
    elif verb in "xX":
        data = s.encode("utf-8", "surrogatepass")
        if spec.prec is not None:
            data = data[:spec.prec]
        s = data.hex(" ") if spec.space else data.hex()
        s = s.upper() if verb == "X" else s
    return spec.pad(s)


def _fmt_verb(v: Any, verb: str, spec: _Spec) -> str:
    """One printf operand, as fmt formats it (verbs apply element-wise to lists and maps)."""
    if isinstance(v, list | tuple):
        return "[" + " ".join(_fmt_verb(e, verb, spec) for e in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{_fmt_verb(k, verb, spec)}:{_fmt_verb(e, verb, spec)}"
                                 for k, e in items) + "]"
    if v is None or v is _MISSING:
        return spec.pad("<nil>") if verb == "v" else _bad_verb(verb, v)
    if isinstance(v, bool):
        return spec.pad(_sprint(v)) if verb in "vt" else _bad_verb(verb, v)
    if isinstance(v, int):
        return _fmt_int(v, verb, spec) if verb in "vdxXobcqU" else _bad_verb(verb, v)
    if isinstance(v, float):
        return _fmt_float(v, verb, spec) if verb in "veEfFgG" else _bad_verb(verb, v)
    if isinstance(v, str):
        return _fmt_str(v, verb, spec) if verb in "vsqxX" else _bad_verb(verb, v)
    return spec.pad(_sprint(v)) if verb in "vs" else _bad_verb(verb, v)


def _sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf: flags ``-+# 0``, width, precision (``*`` for either), and the verbs
    v s d q t x X o b c U e E f F g G, with Go's %!verb(type=value) for a mismatch."""
    out: list[str] = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in "-+# 0":
            c = fmt[i]
            spec.minus |= c == "-"
            spec.plus |= c == "+"
            spec.sharp |= c == "#"
            spec.space |= c == " "
            spec.zero |= c == "0"
            i += 1
        for attr in ("width", "prec"):
            if attr == "prec":
                if i < n and fmt[i] == ".":
                    i += 1
                    spec.prec = 0
                else:
                    break
            if i < n and fmt[i] == "*":
                i += 1
                star = args[argi] if argi < len(args) else None
                argi += 1
                if isinstance(star, int) and not isinstance(star, bool):
                    if attr == "width" and star < 0:
                        spec.minus, star = True, -star
                    setattr(spec, attr, star)
                else:
                    out.append("%!(BADWIDTH)" if attr == "width" else "%!(BADPREC)")
                continue
            m = re.match(r"\d+", fmt[i:])
            if m:
                setattr(spec, attr, int(m.group()))
                i += m.end()
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
        elif argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_fmt_verb(args[argi], verb, spec))
            argi += 1
    if argi < len(args):
        extra = ", ".join("<nil>" if a is None or a is _MISSING else f"{_gotype(a)}={_sprint(a)}"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# --- encoding/json --------------------------------------------------------------------

_JSON_ESC = re.compile("[\x00-\x1f\"\\\\\u2028\u2029\ud800-\udfff]")
_JSON_NAMED = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_char(m: re.Match[str]) -> str:
    c = m.group()
    if c in _JSON_NAMED:
        return _JSON_NAMED[c]
    if "\ud800" <= c <= "\udfff":
        return "\\ufffd"
    return f"\\u{ord(c):04x}"


def _json(v: Any) -> str:
    """Docker's ``json``: encoding/json with SetEscapeHTML(false), compact, keys in the
    order of the dict (the order of the fields of the struct it stands for)."""
    if v is None or v is _MISSING or v is _HEADER:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise _FuncError(f"json: unsupported value: {_float_str(v)}")
        return _float_str(v, "json")
    if isinstance(v, str):
        return '"' + _JSON_ESC.sub(_json_char, v) + '"'
    if isinstance(v, list | tuple):
        return "[" + ",".join(_json(e) for e in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_json(str(k)) + ":" + _json(e) for k, e in v.items()) + "}"
    raise _FuncError(f"json: unsupported type: {type(v).__name__}")


# --- functions --------------------------------------------------------------------------


def _truth(v: Any) -> bool:
    if v is None or v is _MISSING:
        return False
    if v is _HEADER:
        return True
    if isinstance(v, bool | int | float):
        return v != 0
    if isinstance(v, str | list | tuple | dict):
        return len(v) > 0
    return True


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is _MISSING:
        return "nil"
    return "other"


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in others:
        kb = _basic_kind(b)
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            continue
        if ka != kb:
            raise _FuncError("incompatible types for comparison")
        if ka == "other":
            raise _FuncError(f"non-comparable type {_sprint(a)}: {_gotype(a)}")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("nil", "other", "bool") or kb in ("nil", "other", "bool"):
        if ka == kb or "other" in (ka, kb) or "nil" in (ka, kb):
            raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return bool(a < b)


def _length(v: Any) -> int:
    if v is None or v is _MISSING:
        raise _FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, list | tuple | dict):
        return len(v)
    raise _FuncError(f"len of type {_gotype(v)}")


def _index(item: Any, *indices: Any) -> Any:
    for ix in indices:
        if item is None or item is _MISSING:
            raise _FuncError("index of untyped nil")
        if isinstance(item, list | tuple | str):
            if not isinstance(ix, int) or isinstance(ix, bool):
                raise _FuncError(f"cannot index slice/array with type {_gotype(ix)}")
            if ix < 0 or ix >= len(item):
                raise _FuncError(f"index out of range: {ix}")
            item = item[ix] if not isinstance(item, str) else item.encode("utf-8")[ix]
        elif isinstance(item, dict):
            if ix is None or ix is _MISSING:
                ix = ""
            if not isinstance(ix, str):
                raise _FuncError(f"value has type {_gotype(ix)}; should be string")
            item = item.get(ix)
        else:
            raise _FuncError(f"can't index item of type {_gotype(item)}")
    return item


def _join(elems: Any, sep: str) -> str:
    if elems is None or elems is _MISSING:
        return ""
    if isinstance(elems, list | tuple):
        return sep.join(_sprint(e) for e in elems)
    if isinstance(elems, dict):
        return sep.join(sorted(_sprint(e) for e in elems.values()))
    raise _FuncError(f"expected slice, got {_gotype(elems)}")


def _split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


def _case(s: str, upper: bool) -> str:
    """strings.ToUpper/ToLower: rune by rune (Go keeps ß, Python would write SS)."""
    out = []
    for c in s:
        m = c.upper() if upper else c.lower()
        out.append(m if len(m) == 1 else c)
    return "".join(out)


def _is_separator(c: str) -> bool:
    if c <= "\x7f":
        return not (c.isascii() and (c.isalnum() or c == "_"))
    if c.isalpha() or c.isdigit():
        return False
    return c.isspace()


def _title(s: str) -> str:
    """strings.Title: the first letter of every word upper case."""
    out, prev = [], " "
    for c in s:
        out.append(_case(c, True) if _is_separator(prev) else c)
        prev = c
    return "".join(out)


def _pad(s: str, left: int, right: int) -> str:
    if left < 0 or right < 0:
        raise _FuncError("strings: negative Repeat count")
    return s if s == "" else " " * left + s + " " * right


def _truncate(s: str, length: int) -> str:
    if length < 0:
        raise _FuncError(f"runtime error: slice bounds out of range [:{length}]")
    return s if len(s) < length else s[:length]


# name: (parameter types, variadic element type or None, implementation).
# Types: "any" (interface{}), "str", "int". and/or are evaluated lazily by the executor.
_FUNCS: dict[str, tuple[tuple[str, ...], str | None, Callable[..., Any]]] = {
    "and": (("any",), "any", lambda *a: a[-1]),
    "or": (("any",), "any", lambda *a: a[-1]),
    "not": (("any",), None, lambda v: not _truth(v)),
    "len": (("any",), None, _length),
    "index": (("any",), "any", _index),
    "print": ((), "any", lambda *a: _sprint_args(list(a))),
    "printf": (("str",), "any", lambda f, *a: _sprintf(f, list(a))),
    "println": ((), "any", lambda *a: _sprint_args(list(a), line=True)),
    "eq": (("any",), "any", _eq),
    "ne": (("any", "any"), None, lambda a, b: not _eq(a, b)),
    "lt": (("any", "any"), None, _lt),
    "le": (("any", "any"), None, lambda a, b: _lt(a, b) or _eq(a, b)),
    "gt": (("any", "any"), None, lambda a, b: not (_lt(a, b) or _eq(a, b))),
    "ge": (("any", "any"), None, lambda a, b: not _lt(a, b)),
    "json": (("any",), None, _json),
    "split": (("str", "str"), None, _split),
    "join": (("any", "str"), None, _join),
    "title": (("str",), None, _title),
    "lower": (("str",), None, lambda s: _case(s, False)),
    "upper": (("str",), None, lambda s: _case(s, True)),
    "pad": (("str", "int", "int"), None, _pad),
    "truncate": (("str", "int"), None, _truncate),
}

# Docker's HeaderFunctions: in the header line these return their first argument.
_HEADER_PASS = frozenset({"json", "split", "join", "title", "lower", "upper", "truncate",
                          "index"})

_GOTYPE_NAME = {"str": "string", "int": "int"}


# --- execution --------------------------------------------------------------------------


class _Exec:
    def __init__(self, src: str, escape: Callable[[str], str] | None, header: bool,
                 header_names: Mapping[str, str]) -> None:
        self.src = src
        self.escape = escape
        self.header = header
        self.header_names = header_names
        self.vars: list[list[Any]] = []
        self.out: list[str] = []
        self.node: _Node | None = None

    def error(self, message: str) -> NoReturn:
        hint = _HINT
        if self.node is not None:
            line = self.src.count("\n", 0, self.node.pos) + 1
            hint = f"at <{self.node}> on line {line} of the format; {_HINT}"
        raise UsageError(f"template: {message}", hint=hint)

    # variables

    def var_value(self, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i][1] = value
                return
        self.error(f"undefined variable: {name}")

    # walking

    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if not self.header:
                self.walk_node(dot, node)
                continue
            mark, size = len(self.vars), len(self.out)
            try:
                self.walk_node(dot, node)
            except UsageError:  # a header the template cannot say is left empty
                del self.out[size:]
                del self.vars[mark:]

    def walk_node(self, dot: Any, node: _Node) -> None:
        self.node = node
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(value)
        elif isinstance(node, _Control):
            mark = len(self.vars)
            try:
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    value = self.eval_pipeline(dot, node.pipe)
                    if _truth(value):
                        self.walk(value if node.kind == "with" else dot, node.body)
                    elif node.orelse is not None:
                        self.walk(dot, node.orelse)
            finally:
                del self.vars[mark:]
        elif isinstance(node, _Word):
            raise _Break() if node.word == "break" else _Continue()

    def walk_range(self, dot: Any, node: _Control) -> None:
        value = self.eval_pipeline(dot, node.pipe)
        mark = len(self.vars)
        ndecl = len(node.pipe.decl)
        if self.header and (value is _HEADER or isinstance(value, str)):
            items: list[tuple[Any, Any]] = [(_HEADER, _HEADER)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value, key=_sort_key)]
        elif value is _MISSING or value is None:
            items = []
        else:
            self.node = node
            self.error(f"range can't iterate over {_sprint(value)}")
        for key, elem in items:
            if ndecl:
                self.vars[mark - 1][1] = elem
            if ndecl > 1:
                self.vars[mark - 2][1] = key
            try:
                self.walk(elem, node.body)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[mark:]
        if not items and node.orelse is not None:
            self.walk(dot, node.orelse)

    def print_value(self, value: Any) -> None:
        if value is _MISSING or value is None:
            text = "<no value>"
        elif value is _HEADER:
            text = ""
        else:
            text = _sprint(value)
        if self.escape is not None:
            text = self.escape(text)
        self.out.append(text)

    # evaluation

    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value = _NOARG
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # an interface{} holding nil is dug down to "no value"
                value = _MISSING
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def not_a_function(self, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _NOARG:
            self.error(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: list[_Node], final: Any) -> Any:
        first = cmd[0]
        self.node = first
        if isinstance(first, _Field):
            return self.eval_chain(dot, dot, first.names, cmd, final)
        if isinstance(first, _Chain):
            receiver = self.eval_arg(dot, first.node)
            return self.eval_chain(dot, receiver, first.names, cmd, final)
        if isinstance(first, _Ident):
            return self.eval_function(dot, first.name, cmd, final)
        if isinstance(first, _Paren):
            self.not_a_function(cmd, final)
            return self.eval_pipeline(dot, first.pipe)
        if isinstance(first, _Var):
            value = self.var_value(first.name)
            if not first.names:
                self.not_a_function(cmd, final)
                return value
            return self.eval_chain(dot, value, first.names, cmd, final)
        self.not_a_function(cmd, final)
        assert isinstance(first, _Const)
        if first.kind == "nil":
            self.error("nil is not a command")
        return dot if first.kind == "dot" else first.value

    def eval_chain(self, dot: Any, receiver: Any, names: list[str], args: list[_Node] | None,
                   final: Any) -> Any:
        if receiver is _HEADER:
            name = names[-1]
            if (args is not None and len(args) > 1) or final is not _NOARG:
                self.error(f"{name} is not a method but has arguments")
            return self.header_names.get(name) or header_name(name)
        for i, name in enumerate(names):
            last = i == len(names) - 1
            has_args = last and ((args is not None and len(args) > 1) or final is not _NOARG)
            if receiver is _MISSING:
                return _MISSING
            if receiver is None:
                self.error(f"nil pointer evaluating interface {{}}.{name}")
            if not isinstance(receiver, dict):
                self.error(f"can't evaluate field {name} in type {_gotype(receiver)}")
            if has_args:
                self.error(f"{name} is not a method but has arguments")
            receiver = receiver.get(name, _MISSING)
        return receiver

    def eval_arg(self, dot: Any, node: _Node, typ: str = "any") -> Any:
        """An argument of a function (or the receiver of a chain) of Go type ``typ``."""
        self.node = node
        if isinstance(node, _Const):
            if node.kind == "dot":
                return self.check_type(dot, typ)
            if node.kind == "nil":
                if typ != "any":
                    self.error(f"cannot assign nil to {_GOTYPE_NAME[typ]}")
                return None
            if typ == "str" and node.kind != "string":
                self.error(f"expected string; found {node}")
            if typ == "int" and not (node.kind == "number" and _is_int_const(node.value)):
                self.error(f"expected integer; found {node}")
            return int(node.value) if typ == "int" else node.value
        if isinstance(node, _Field):
            value = self.eval_chain(dot, dot, node.names, [node], _NOARG)
        elif isinstance(node, _Var):
            value = self.var_value(node.name)
            if node.names:
                value = self.eval_chain(dot, value, node.names, None, _NOARG)
        elif isinstance(node, _Paren):
            value = self.eval_pipeline(dot, node.pipe)
        elif isinstance(node, _Ident):
            value = self.eval_function(dot, node.name, [node], _NOARG)
        else:
            assert isinstance(node, _Chain)
            value = self.eval_command(dot, [node], _NOARG)
        return self.check_type(value, typ)

    def check_type(self, value: Any, typ: str) -> Any:
        if typ == "any":
            return None if value is _MISSING else value
        want = _GOTYPE_NAME[typ]
        if value is _MISSING:
            self.error(f"invalid value; expected {want}")
        if value is None:
            self.error(f"wrong type for value; expected {want}; got interface {{}}")
        ok = isinstance(value, str) if typ == "str" else (
            isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            self.error(f"wrong type for value; expected {want}; got {_gotype(value)}")
        return value

    def eval_function(self, dot: Any, name: str, cmd: list[_Node], final: Any) -> Any:
        fixed, variadic, impl = _FUNCS[name]
        args = cmd[1:]
        num_in = len(args) + (final is not _NOARG)
        if self.header and name in _HEADER_PASS:
            values = [self.eval_arg(dot, a) for a in args]
            if final is not _NOARG:
                values.append(final)
            return values[0] if values else _HEADER
        if variadic is not None:
            if num_in < len(fixed):
                self.error(f"wrong number of args for {name}: want at least {len(fixed)} "
                           f"got {len(args)}")
        elif num_in != len(fixed):
            self.error(f"wrong number of args for {name}: want {len(fixed)} got {num_in}")

        def typ(i: int) -> str:
            return fixed[i] if i < len(fixed) else variadic or "any"

        if name in ("and", "or"):  # short-circuit, returning the deciding operand
            value: Any = None
            for a in args:
                value = self.eval_arg(dot, a)
                if _truth(value) == (name == "or"):
                    return value
            if final is not _NOARG:
                value = self.check_type(final, "any")
            return value
        values = [self.eval_arg(dot, a, typ(i)) for i, a in enumerate(args)]
        if final is not _NOARG:
            values.append(self.check_type(final, typ(num_in - 1)))
        try:
            return impl(*values)
        except _FuncError as e:
            self.node = cmd[0]
            self.error(f"error calling {name}: {e}")


def _is_int_const(v: Any) -> bool:
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


# --- the public API ---------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def header_name(field: str) -> str:
    """A table header for a field as Docker writes them: ``CreatedAt`` -> ``CREATED AT``,
    ``IPAddress`` -> ``IP ADDRESS``, ``ID`` -> ``ID``; underscores become spaces."""
    return _CAMEL.sub(" ", field).replace("_", " ").upper()


class Template:
    """A compiled ``--format``. ``table`` says the format began with ``table``; ``headers``
    are then the cells of its header line (the last field name of each action, as
    :func:`header_name` or ``header_names`` says it), else empty."""

    __slots__ = ("source", "table", "headers", "_text", "_root", "_header_names")

    def __init__(self, source: str, table: bool, text: str, root: list[_Node],
                 header_names: Mapping[str, str]) -> None:
        self.source = source
        self.table = table
        self._text = text
        self._root = root
        self._header_names = header_names
        line = self.header_line() if table else ""
        self.headers: list[str] = line.split("\t") if line else []

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, data: Any, *, escape: Callable[[str], str] | None = None) -> str:
        """The template applied to ``data``. ``escape``, when given, is applied to the text
        of every value an action prints (not to the template's own text): pass
        ``secpod._text.printable`` for a terminal."""
        ex = _Exec(self._text, escape, False, self._header_names)
        ex.vars.append(["$", data])
        try:
            ex.walk(data, self._root)
        except RecursionError:
            raise UsageError("template: the format nests too deeply", hint=_HINT) from None
        return "".join(ex.out)

    def header_line(self) -> str:
        """The row template rendered as Docker renders a table's header: every field is its
        header, ``json``, ``split``, ``join``, ``title``, ``lower``, ``upper``, ``truncate``
        and ``index`` return their first argument, a range runs once, and an action that
        fails says nothing."""
        ex = _Exec(self._text, None, True, self._header_names)
        ex.vars.append(["$", _HEADER])
        ex.walk(_HEADER, self._root)
        return "".join(ex.out)


def compile_template(text: str, *, header_names: Mapping[str, str] | None = None) -> Template:
    """Parse a ``--format`` as Docker does (see the module's docstring). ``header_names``
    maps a field name to its table header where Docker's differs from the field's own
    (``{"ID": "CONTAINER ID"}``). Raises UsageError."""
    src = "{{json .}}" if text == "json" else text
    table = src.startswith("table")
    if table:
        src = src[len("table"):]
    src = src.strip(" ")
    try:
        root = _Parser(src).parse()
    except RecursionError:
        raise UsageError("template: the format nests too deeply", hint=_HINT) from None
    return Template(text, table, src, root, dict(header_names or {}))


_JSON_FORMAT = re.compile(r"\{\{-?\s*json\s+\.\s*-?\}\}")


def is_json_format(text: str) -> bool:
    """True for ``json`` and ``{{json .}}`` (spaces and trim markers aside): the caller
    prints the items as JSON itself."""
    t = text.strip()
    return t == "json" or _JSON_FORMAT.fullmatch(t) is not None


def _cell_width(s: str) -> int:
    """Columns a cell takes on a terminal (go-runewidth, which Docker's tabwriter uses)."""
    if s.isascii():
        return len(s)
    import unicodedata  # only for non-ASCII cells

    w = 0
    for c in s:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return w


def _tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as Docker sets it up: ``NewWriter(out, 10, 1, 3, ' ', 0)``.
    A column is a run of adjacent lines with a tab-terminated cell in it; each of its cells
    is padded with spaces to the widest plus 3, at least 10. A line's last cell is not."""
    lines = [line.split("\t") for line in text.replace("\v", "\t").split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            for j, cell in enumerate(lines[i]):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - _cell_width(cell)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, _cell_width(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return "".join(out)


def render_table(tmpl: Template, rows: Iterable[Any], *,
                 escape: Callable[[str], str] | None = None) -> str:
    """Every row rendered and followed by a newline, as ``docker ps --format`` prints them.
    A ``table`` format gets its header line first and the whole aligned by
    :func:`_tabwrite`; any other format is printed as rendered."""
    body = "".join(tmpl.render(row, escape=escape) + "\n" for row in rows)
    if not tmpl.table:
        return body
    return _tabwrite(tmpl.header_line() + "\n" + body)
