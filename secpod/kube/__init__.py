"""Kubernetes from secpod's containers: ``secpod kube generate`` (docs/kubernetes.md).

- :mod:`secpod.kube.generate`: a ``v1`` Pod (or ``apps/v1`` Deployment) holding one or
  more existing containers, each container's securityContext carrying the confinement
  it ran under, and a NetworkPolicy where its network had no route out.
- :mod:`secpod.kube.seccomp`: a container's seccomp filter as the JSON file kubelet
  reads for ``seccompProfile: {type: Localhost}``.
- :mod:`secpod.kube.names`: Kubernetes object names (DNS-1123) and label syntax.

What Kubernetes cannot state as secpod enforced it is refused (``Refused``, with the
container and the reason), or, where the cluster ends up no weaker, said as a note.
"""

from __future__ import annotations

__all__: list[str] = []
