"""Every program the set-up scripts and the suite call is installed by the scripts.

A fresh machine of the kind CI runs on lacked `cpio`, which scripts/test-env.sh
piped into: the README's two commands failed there while CI, on a machine with
cpio left over from earlier work, passed. This test lists the programs that
scripts/, the Makefile, .ci/run, bench/ and the tests call, and proves that each
one comes from a Debian package that scripts/test-env.sh installs (or one of its direct
dependencies) or that every
Debian 12 system has (priority "required"), so a missing install step fails
here instead of on the next fresh machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Words that stand where a command stands but are not programs.
SHELL_WORDS = {
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
    "esac", "in", "function", "select", "time", "!", "{", "}", "[[", "]]", "exec", "command",
    "env", "nohup", "xargs",
}


def apt_packages() -> set[str]:
    """The packages scripts/test-env.sh installs (its ``apt_packages=( ... )`` array)."""
    text = (REPO / "scripts" / "test-env.sh").read_text()
    m = re.search(r"^apt_packages=\((.*?)\)", text, re.S | re.M)
    assert m, "scripts/test-env.sh has no apt_packages=( ... ) array"
    return set(m.group(1).split())


def _command_words(line: str) -> list[str]:
    """First words of each simple command in shell text without quotes (see _host_code)."""
    words = []
    for part in re.split(r"\|\||&&|[|;`(){}\n]|\bthen\b|\bdo\b|\belse\b", line):
        toks = part.split()
        if toks[:1] == ["for"]:  # `for NAME in WORDS`: no command before `do`
            continue
        while toks and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", toks[0]) or toks[0] in SHELL_WORDS):
            toks.pop(0)
        if toks:
            words.append(toks[0])
    return words


def _host_code(text: str) -> str:
    """Shell text with what is not run on the host taken out.

    Comments, here-documents and quoted strings go; what stands inside ``$( )`` in double
    quotes stays, and so does the body of ``bash -c '...'``, except where secpod hands it
    to a container (``secpod run ... sh -c '...'`` runs inside the image).
    """
    out: list[str] = []
    heredoc: str | None = None
    line_start = 0
    bodies: list[str] = []  # the scripts of `bash -c '...'`, scanned as their own lines
    text = re.sub(r"^\s*[A-Za-z_]\w*=\(.*?\)", "", text, flags=re.S | re.M)  # arrays
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if heredoc is not None:
            j = text.find("\n", i)
            j = n if j < 0 else j
            if text[i:j].strip() == heredoc:
                heredoc = None
            i = j + 1
            out.append("\n")
            continue
        if c == "\n":
            line_start = len(out) + 1
        if c == "#" and (i == 0 or text[i - 1] in " \t\n;"):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("<<", i):
            m = re.match(r"<<-?\s*['\"]?(\w+)['\"]?", text[i:])
            if m:
                heredoc = m.group(1)
                j = text.find("\n", i)
                out.append(" Q")
                i = n if j < 0 else j
                continue
        if c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j
            before = "".join(out[line_start:])
            if re.search(r"\b(bash|sh) -c\s*$", before) and "secpod" not in before:
                bodies.append(_host_code(text[i + 1:j]))
            out.append(" Q ")
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            kept = []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith("$((", j):  # arithmetic, no command
                    k = text.find("))", j)
                    j = n if k < 0 else k + 2
                    continue
                if text.startswith("$(", j):
                    depth, k = 1, j + 2
                    while k < n and depth:
                        depth += {"(": 1, ")": -1}.get(text[k], 0)
                        k += 1
                    kept.append(" (" + _host_code(text[j + 2:k - 1]) + ") ")
                    j = k
                    continue
                j += 1
            out.append(" Q " + " ".join(kept))
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "\n".join(["".join(out), *bodies])


def _shell_sources() -> list[Path]:
    return [*sorted((REPO / "scripts").glob("*.sh")), REPO / ".ci" / "run", REPO / "Makefile"]


def _python_sources() -> list[Path]:
    return [*sorted((REPO / "tests").rglob("*.py")), *sorted((REPO / "bench").glob("*.py"))]


PY_CALL = re.compile(
    r"""(?:subprocess\.(?:run|Popen|check_output|check_call|call)|\.sh|shutil\.which)"""
    r"""\(\s*\[?\s*f?["']([^"'\s{}$]+)["']""")


def called_programs() -> dict[str, str]:
    """Program name -> the first file that calls it."""
    found: dict[str, str] = {}
    for path in _shell_sources():
        functions = set(re.findall(r"^\s*([A-Za-z_][\w-]*)\s*\(\)", path.read_text(), re.M))
        text = path.read_text()
        if path.name == "Makefile":  # recipes only, with make's own $(VARIABLES) taken out
            text = "\n".join(re.sub(r"\$\(\w+\)", "Q", line) for line in text.splitlines()
                             if line.startswith("\t"))
        for line in _host_code(text).splitlines():
            for word in _command_words(line):
                word = word.strip("'\"")
                if (word == "Q" or not re.fullmatch(r"[A-Za-z0-9_./+-]+", word) or word in functions
                        or word.startswith(("$", "-", ".")) or "/" in word.strip("/")
                        and not word.startswith("/")):
                    continue
                found.setdefault(os.path.basename(word), str(path.relative_to(REPO)))
    for path in _python_sources():
        for prog in PY_CALL.findall(path.read_text()):
            if prog.startswith(("/var/", "/tmp/", "/proc/")):
                continue
            found.setdefault(os.path.basename(prog), str(path.relative_to(REPO)))
    # The interpreter the venv is made from, and the tools the suite runs from the venv.
    for venv_tool in ("secpod", "pytest", "ruff", "mypy", "pip", "python", "python3"):
        found.pop(venv_tool, None)
    return found


def with_dependencies(packages: set[str]) -> set[str]:
    """``packages`` and what they depend on directly (installing gnupg installs gpg)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}\n", *packages],
                         capture_output=True, text=True, check=False).stdout
    deps = {alt.split()[0].split(":")[0] for dep in re.split(r"[,|\n]", out) if
            (alt := dep.strip())}
    return packages | deps


def _is_builtin(word: str) -> bool:
    kind = subprocess.run(["bash", "-c", f"type -t -- {word!s}"], capture_output=True,
                          text=True, check=False).stdout.strip()
    return kind in {"builtin", "keyword"}


def _packages_of(path: str) -> list[str]:
    """The Debian packages that own ``path`` or what it links to (merged /usr aware)."""
    candidates = []
    for p in (path, os.path.realpath(path)):  # merged /usr: dpkg may record /bin/x
        candidates += [p, p[4:] if p.startswith("/usr/") else "/usr" + p]
    found = []
    for p in dict.fromkeys(candidates):
        out = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True,
                             check=False)
        for line in out.stdout.splitlines() if out.returncode == 0 else []:
            if not line.startswith("diversion by"):
                found += [pkg.strip() for pkg in line.split(":")[0].split(",")]
    return list(dict.fromkeys(found))


def _priority(pkg: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Priority}", pkg], capture_output=True,
                          text=True, check=False).stdout.strip()


def _words(text: str) -> list[str]:
    return [w for line in _host_code(text).splitlines() for w in _command_words(line)]


def test_the_scan_sees_a_piped_program() -> None:
    """The line that broke a fresh machine is caught by the scan."""
    assert "cpio" in _words('(cd "$here" && git ls-files -z | \\\n  cpio --null -pdm "$s")')
    assert _words("(cd x && git ls-files -z | tar -cf -) | tar -x") == ["cd", "git", "tar", "tar"]
    assert _words("VAR=1 exec unshare -m -- bash -c '\n  mountpoint -q /x\n'") == [
        "unshare", "mountpoint"]
    assert _words('want=$(sha256sum "$(cat "$f")" | cut -d" " -f1)') == ["sha256sum", "cat", "cut"]


def test_the_scan_skips_what_is_not_run_on_the_host() -> None:
    text = """# a comment (it names cpio)
echo "a string (with words) in it" >&2
python3 - <<'PY'
from x import y
PY
secpod run --rm img sh -c '
  grep CapEff /proc/self/status
'
"""
    assert _words(text) == ["echo", "python3", "secpod"]


def test_every_program_called_is_installed_by_the_scripts() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.fail("dpkg-query is missing: this check runs on Debian 12, as CI does")
    installed_by_scripts = with_dependencies(apt_packages())
    problems = []
    for prog, where in sorted(called_programs().items()):
        if _is_builtin(prog):
            continue
        path = shutil.which(prog)
        if path is None:
            problems.append(f"{prog} (called in {where}) is not installed")
            continue
        pkgs = _packages_of(path)
        if not pkgs:
            problems.append(f"{prog} (called in {where}) at {path} belongs to no Debian package")
            continue
        if any(p in installed_by_scripts or _priority(p) == "required" for p in pkgs):
            continue
        problems.append(f"{prog} (called in {where}) comes from {', '.join(pkgs)} (priority "
                        f"{_priority(pkgs[0]) or '?'}), which scripts/test-env.sh does not "
                        "install")
    assert not problems, "\n".join(problems)
