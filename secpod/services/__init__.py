"""Containers as services: systemd units (``secpod generate systemd``) and Quadlet
files (``secpod-user-generator``). docs/services.md.

- :mod:`secpod.services.units`: the unit file format (quoting, rendering) and the units
  ``generate systemd`` writes for a container or a pod (its unit and its members').
- :mod:`secpod.services.quadlet`: Podman's Quadlet ``.container``, ``.volume``, ``.pod``
  and ``.kube`` files, translated into the same units.

Both write only what ``systemd-analyze verify`` takes without a warning, and both refuse,
naming the file, line and key, what secpod cannot honour.
"""

from __future__ import annotations

__all__: list[str] = []
