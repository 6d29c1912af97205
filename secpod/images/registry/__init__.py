"""Registries: pull and push over the OCI distribution API, signatures travelling along.

``pull`` stores a registry image through :meth:`secpod.images.Store.add_image`
(so every blob is verified and nothing is half-stored) and fetches its cosign
signatures (the ``sha256-<hex>.sig`` tag, and OCI 1.1 referrers) into
secpod.signing's store, so ``run`` and ``verify`` work offline. ``push``
sends an image and its sigstore signatures. Standard library HTTP only;
bearer-token and basic auth; TLS verified unless ``tls_verify`` is false.
docs/registry.md has the details.
"""

from __future__ import annotations

from secpod.images.registry._auth import Credentials, find_credentials
from secpod.images.registry._pull import PullResult, RegistryOptions, RegistrySource, pull
from secpod.images.registry._push import PushResult, push
from secpod.images.registry.distribution import RegistryClient

__all__ = [
    "Credentials",
    "PullResult",
    "PushResult",
    "RegistryClient",
    "RegistryOptions",
    "RegistrySource",
    "find_credentials",
    "pull",
    "push",
]
