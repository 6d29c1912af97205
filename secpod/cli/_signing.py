"""CLI commands of this area (registered into the top-level parser)."""

from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this area's commands to ``sub``."""
