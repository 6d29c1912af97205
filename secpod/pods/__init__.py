"""Pods: containers that share a user, network, IPC and UTS namespace, with one life
(docs/pods.md, docs/adr/0008-pods.md).

- :mod:`~secpod.pods.record`: the pod's record and name;
- :mod:`~secpod.pods.infra`: its infra container (catatonit under the runtime, strict),
  which holds the shared namespaces, behind a holder that publishes the pod's ports;
- :mod:`~secpod.pods.namespaces`: how a member joins them (checked descriptors, never a
  ``/proc/PID`` path);
- :mod:`~secpod.pods.lifecycle`: create, start, stop, kill, restart, rm, prune, and the
  infra's end;
- :mod:`~secpod.pods.views`: ``pod ps`` rows and ``pod inspect``.
"""
