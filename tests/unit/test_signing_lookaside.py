"""registries.d parsing, scope precedence and the lookaside URL layout (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secpod.errors import LookasideError, RegistriesConfigError
from secpod.images.reference import parse
from secpod.signing import lookaside

DIGEST = "sha256:" + "ab" * 32


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


def test_url_layout_is_containers_images() -> None:
    ref = parse("busybox:1.36")
    assert lookaside.signature_url("file:///srv/sigs", ref, DIGEST, 1) == \
        f"file:///srv/sigs/library/busybox@sha256={'ab' * 32}/signature-1"
    ref = parse(f"registry.example.com:5000/team/app@{DIGEST}")
    assert lookaside.signature_url("https://s.example.com/store/", ref, DIGEST, 3) == \
        f"https://s.example.com/store/team/app@sha256={'ab' * 32}/signature-3"
    with pytest.raises(LookasideError):
        lookaside.signature_url("file:///x", ref, "sha256:zz", 1)
    with pytest.raises(LookasideError):
        lookaside.signature_url("file:///x", ref, DIGEST, 0)


def test_most_specific_scope_wins_then_default(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", """
default-docker:
  lookaside: https://default.example.com
docker:
  registry.example.com:
    lookaside: https://host.example.com
  registry.example.com/team:
    lookaside: https://team.example.com
    lookaside-staging: file:///staging/team
  registry.example.com/team/app:latest:
    sigstore: https://tag.example.com
  "*.example.com":
    lookaside: https://wild.example.com
""")
    write(tmp_path, "b.yaml", """
docker:
  registry.example.com/team/only-staging:
    lookaside-staging: file:///staging/only
""")
    write(tmp_path, "ignored.yml", "not: [valid")
    cfg = lookaside.load_config(tmp_path)

    def read(ref: str) -> tuple[str, str] | None:
        found = cfg.lookup(parse(ref), write=False)
        return None if found is None else found[:2]

    def wrote(ref: str) -> tuple[str, str] | None:
        found = cfg.lookup(parse(ref), write=True)
        return None if found is None else found[:2]

    assert read("registry.example.com/team/app:latest") == (
        "registry.example.com/team/app:latest", "https://tag.example.com")
    assert read("registry.example.com/team/app:v2") == (
        "registry.example.com/team", "https://team.example.com")
    assert wrote("registry.example.com/team/app:v2") == (
        "registry.example.com/team", "file:///staging/team")
    # writing with no staging falls back to the read URL (sigstore is lookaside's old name)
    assert wrote("registry.example.com/team/app:latest") == (
        "registry.example.com/team/app:latest", "https://tag.example.com")
    assert read("registry.example.com/other:1") == ("registry.example.com",
                                                   "https://host.example.com")
    assert read("mirror.example.com/x:1") == ("*.example.com", "https://wild.example.com")
    assert read("quay.io/x/y:1") == ("default-docker", "https://default.example.com")
    # a section with only a staging URL configures nothing for reading: the parent applies
    assert read("registry.example.com/team/only-staging:1") == (
        "registry.example.com/team", "https://team.example.com")
    assert wrote("registry.example.com/team/only-staging:1") == (
        "registry.example.com/team/only-staging", "file:///staging/only")
    assert cfg.docker["registry.example.com/team/only-staging"].source == str(tmp_path / "b.yaml")


def test_empty_or_missing_configuration(tmp_path: Path) -> None:
    assert lookaside.load_config(tmp_path / "absent").lookup(parse("busybox"), write=False) \
        is None
    write(tmp_path, "empty.yaml", "")
    write(tmp_path, "nulls.yaml", "docker:\n")
    assert lookaside.load_config(tmp_path).lookup(parse("busybox"), write=True) is None


@pytest.mark.parametrize(("text", "message"), [
    ("docker:\n  example.com:\n    lookaside: file:///x\n    signature-store: file:///y\n",
     "unknown key 'signature-store'"),
    ("default-dockr:\n  lookaside: file:///x\n", "unknown key 'default-dockr'"),
    ("docker:\n  example.com:\n    lookaside: ftp://x/y\n", "the scheme must be file, http or"),
    ("docker:\n  example.com:\n    lookaside: file://host/x\n", "is not a file:///PATH URL"),
    ("docker:\n  example.com:\n    lookaside: 5\n", "must be a non-empty URL string"),
    ("docker:\n  example.com:\n    use-sigstore-attachments: yes please\n",
     "must be true or false"),
    ("docker:\n  example.com:\n    lookaside: file:///a\n  example.com:\n    lookaside: file:///b\n",
     "key 'example.com' is given twice"),
    ("docker:\n  'bad scope':\n    lookaside: file:///a\n", "invalid docker scope"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("docker: [\n", "not YAML"),
    ("docker:\n  example.com: !!python/object/apply:os.system ['true']\n", "not YAML"),
])
def test_strict_parsing_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RegistriesConfigError) as e:
        lookaside.load_config(tmp_path)
    assert str(p) in e.value.message and message in e.value.message


def test_a_scope_or_default_in_two_files_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "docker:\n  example.com/x:\n    lookaside: file:///a\n")
    b = write(tmp_path, "b.yaml", "docker:\n  example.com/x:\n    lookaside-staging: file:///b\n")
    with pytest.raises(RegistriesConfigError) as e:
        lookaside.load_config(tmp_path)
    assert str(a) in e.value.message and str(b) in e.value.message
    b.write_text("default-docker:\n  lookaside: file:///b\n")
    write(tmp_path, "c.yaml", "default-docker:\n  sigstore: file:///c\n")
    with pytest.raises(RegistriesConfigError, match="default-docker is also defined in"):
        lookaside.load_config(tmp_path)


def test_file_store_round_trip(tmp_path: Path) -> None:
    base = f"file://{tmp_path}/store"
    ref = parse("registry.example.com/team/app:1")
    assert lookaside.read_signatures(base, ref, DIGEST) == []
    first = lookaside.write_signature(base, ref, DIGEST, b"one")
    assert first == tmp_path / "store" / "team" / f"app@sha256={'ab' * 32}" / "signature-1"
    assert lookaside.write_signature(base, ref, DIGEST, b"one") == first
    second = lookaside.write_signature(base, ref, DIGEST, b"two")
    assert second.name == "signature-2"
    (first.parent / "signature-4").write_bytes(b"after a gap: never read")
    assert lookaside.read_signatures(base, ref, DIGEST) == [b"one", b"two"]
    with pytest.raises(LookasideError, match="only file:// lookaside stores are writable"):
        lookaside.write_signature("https://example.com/s", ref, DIGEST, b"x")


def test_a_folder_where_a_signature_should_be_is_a_lookaside_error(tmp_path: Path) -> None:
    base = f"file://{tmp_path}/store"
    ref = parse("registry.example.com/team/app:1")
    first = lookaside.write_signature(base, ref, DIGEST, b"one")
    (first.parent / "signature-2").mkdir()
    with pytest.raises(LookasideError, match="signature-2 is not a regular file"):
        lookaside.read_signatures(base, ref, DIGEST)


def test_a_store_that_cannot_be_written_is_a_lookaside_error(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("a file, not a folder")
    ref = parse("registry.example.com/team/app:1")
    with pytest.raises(LookasideError, match="cannot store the signature") as e:
        lookaside.write_signature(f"file://{tmp_path}/store", ref, DIGEST, b"one")
    assert e.value.hint
