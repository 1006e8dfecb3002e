"""The command line: thin click commands that parse, call the engine, render and map errors to
exit codes (``[project.scripts] reconciler = "reconciler.cli:main"``).

One module per command group: :mod:`.base` (global options, error mapping, the root group, the
entry point), :mod:`.validate` (``validate``, ``schema``), :mod:`.plan` (``plan``, ``show``),
:mod:`.apply`, :mod:`.export` (``export manifests`` and the vendors' export commands),
:mod:`.sandbox`. Importing the package registers every command.
"""

from reconciler.cli import apply, export, plan, sandbox, validate  # noqa: F401 - registers the commands
from reconciler.cli.base import _leave, cli, main

__all__ = ["_leave", "cli", "main"]
