"""secpod._lazy.reexports: a name comes from its module on first use, others raise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secpod import _lazy


def test_a_reexported_name_is_loaded_on_first_use_and_kept() -> None:
    code = ("import sys\nfrom secpod import images\n"
            "print('secpod.images._unpack' in sys.modules)\n"
            "limits = images.Limits\n"
            "print('secpod.images._unpack' in sys.modules, 'Limits' in vars(images),\n"
            "      limits is sys.modules['secpod.images._unpack'].Limits)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]


def test_any_other_name_is_an_attribute_error() -> None:
    hook = _lazy.reexports("secpod.images", {"Limits": "secpod.images._unpack"})
    with pytest.raises(AttributeError, match="module 'secpod.images' has no attribute 'Nope'"):
        hook("Nope")
    from secpod import images

    with pytest.raises(AttributeError):
        images.Nope  # type: ignore[attr-defined]  # noqa: B018
