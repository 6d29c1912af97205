"""secpod: a rootless-only, daemonless container sandbox and supply-chain toolkit.

The five concerns are subpackages: ``images`` (store, import, unpack),
``sandbox`` (preflight, bundle, crun, monitor, state), ``policies``
(profiles, seccomp, LSMs, the administrator's floor), ``signing`` (keys,
signatures, trust policy) and ``audit`` (the record of every action).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
