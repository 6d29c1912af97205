"""``secpod doctor``: what this host allows."""

from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this area's commands to ``sub``."""
