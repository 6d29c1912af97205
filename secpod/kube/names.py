"""Kubernetes names: DNS-1123 labels for objects, containers, volumes and ports; the
syntax of label keys and values (k8s.io/apimachinery validation)."""

from __future__ import annotations

import re

LABEL_MAX = 63
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QNAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_label(name: str) -> bool:
    """A DNS-1123 label: at most 63 of ``a-z0-9-``, alphanumeric at both ends."""
    return len(name) <= LABEL_MAX and _LABEL.fullmatch(name) is not None


def dns_label(text: str, *, fallback: str = "secpod", limit: int = LABEL_MAX) -> str:
    """``text`` made a DNS-1123 label: lower case, each run of other characters one
    ``-``, trimmed to ``limit`` and to alphanumeric ends; ``fallback`` when nothing
    is left (a name made only of ``_`` and ``.``)."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return out or fallback


def unique(name: str, taken: set[str], *, limit: int = LABEL_MAX) -> str:
    """``name``, or ``name-2``, ``name-3``... (trimmed to ``limit``), not in ``taken``;
    the one returned is added to ``taken``."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = name[:limit - len(suffix)].rstrip("-") + suffix
    taken.add(candidate)
    return candidate


def is_label_key(key: str) -> bool:
    """A label or annotation key: ``[PREFIX/]NAME``, PREFIX a DNS-1123 subdomain of at
    most 253, NAME a qualified name of at most 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or _SUBDOMAIN.fullmatch(prefix) is None):
        return False
    return 0 < len(name) <= LABEL_MAX and _QNAME.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    """A label value: empty, or at most 63 of ``A-Za-z0-9-_.``, alphanumeric at the ends."""
    return value == "" or (len(value) <= LABEL_MAX and _QNAME.fullmatch(value) is not None)
