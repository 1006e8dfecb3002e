"""``${var.NAME}`` in manifests: one definition, what differs per environment declared once.

The values come from ``environments.<env>.vars`` of ``reconciler.yaml`` (chosen with ``--env``).
A string that is exactly one reference takes the variable's value with its type (``${var.limit}``
can be a number); references inside a longer string are replaced by their text. ``$${`` writes a
literal ``${``. When a value that came from a variable is invalid, the problem points at the line
of the config where the value was written, and names where it was used.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.errors import Problem
from reconciler.manifest.config import LoadedConfig
from reconciler.manifest.yamlload import Document, Path_

_REF = re.compile(r"\$(\$?)\{\s*var\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_WHOLE = re.compile(r"^\$\{\s*var\.([A-Za-z_][A-Za-z0-9_]*)\s*\}$")


def substitute(doc: Document, config: LoadedConfig) -> list[Problem]:
    """Replace every ``${var.NAME}`` in ``doc`` (in place); problems for unknown names."""
    problems: list[Problem] = []
    env = config.environment
    values: dict[str, Any] = dict(env.vars) if env is not None else {}

    def origin(name: str, used: Path_) -> tuple[str, int, int, str]:
        assert config.doc is not None and config.env is not None
        line, col = config.doc.position(("environments", config.env, "vars", name))
        uline, ucol = doc.position(used)
        return (config.doc.file, line, col, f"${{var.{name}}} of environment {config.env}, used at {doc.file}:{uline}:{ucol}")

    def missing(name: str, path: Path_) -> None:
        if env is None:
            declared = ", ".join(sorted(config.config.environments)) or "none declared in the config"
            problems.append(doc.problem(path, f"${{var.{name}}} needs an environment: choose one with --env ({declared})"))
        else:
            known = ", ".join(sorted(values)) or "none"
            problems.append(doc.problem(path, f"${{var.{name}}}: environment {config.env} has no such variable (its vars: {known})"))

    def text(value: str, path: Path_) -> Any:
        whole = _WHOLE.match(value)
        if whole:
            name = whole.group(1)
            if name not in values:
                missing(name, path)
                return value
            doc.origins[path] = origin(name, path)
            return values[name]

        def one(m: re.Match[str]) -> str:
            if m.group(1):  # $${...}: a literal ${...}
                return m.group(0)[1:]
            name = m.group(2)
            if name not in values:
                missing(name, path)
                return m.group(0)
            v = values[name]
            return ("true" if v else "false") if isinstance(v, bool) else str(v)

        return _REF.sub(one, value)

    def walk(node: dict[Any, Any] | list[Any], path: Path_) -> None:
        # in place; a path is built only for a container or a string that holds a reference
        for k, item in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(item, str):
                if "${" in item:
                    node[k] = text(item, path + (k,))
            elif isinstance(item, (dict, list)):
                walk(item, path + (k,))

    if isinstance(doc.data, (dict, list)):
        walk(doc.data, ())
    elif isinstance(doc.data, str) and "${" in doc.data:
        doc.data = text(doc.data, ())
    return problems
