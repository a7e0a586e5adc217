"""Azurite for the tests: the implementation lives with the sandbox (`emulators/sandbox/azurite.py`), which the
demo and the benchmarks use too; re-exported here so test code keeps one import path."""

from __future__ import annotations

from emulators.sandbox.azurite import ACCOUNT, ACCOUNT_KEY, BINARY, Azurite, connection_string, ensure_installed

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "BINARY", "Azurite", "connection_string", "ensure_installed"]
