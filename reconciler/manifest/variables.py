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
    return _Substitution(doc, config).run()


class _Substitution:
    """One document's substitution. Methods, not closures over each other: a recursive closure is a
    reference cycle, and one per document (2,212 in a 1x fleet) was 40,000 objects of garbage that
    only the cyclic collector frees (engine/heap.py pauses it while manifests load)."""

    def __init__(self, doc: Document, config: LoadedConfig):
        self.doc = doc
        self.config = config
        self.problems: list[Problem] = []
        self.env = config.environment
        self.values: dict[str, Any] = dict(self.env.vars) if self.env is not None else {}

    def run(self) -> list[Problem]:
        doc = self.doc
        if isinstance(doc.data, (dict, list)):
            self.walk(doc.data, ())
        elif isinstance(doc.data, str) and "${" in doc.data:
            doc.data = self.text(doc.data, ())
        return self.problems

    def origin(self, name: str, used: Path_) -> tuple[str, int, int, str]:
        config, doc = self.config, self.doc
        assert config.doc is not None and config.env is not None
        line, col = config.doc.position(("environments", config.env, "vars", name))
        uline, ucol = doc.position(used)
        return (config.doc.file, line, col, f"${{var.{name}}} of environment {config.env}, used at {doc.file}:{uline}:{ucol}")

    def missing(self, name: str, path: Path_) -> None:
        config, doc = self.config, self.doc
        if self.env is None:
            declared = ", ".join(sorted(config.config.environments)) or "none declared in the config"
            self.problems.append(doc.problem(path, f"${{var.{name}}} needs an environment: choose one with --env ({declared})"))
        else:
            known = ", ".join(sorted(self.values)) or "none"
            self.problems.append(
                doc.problem(path, f"${{var.{name}}}: environment {config.env} has no such variable (its vars: {known})")
            )

    def text(self, value: str, path: Path_) -> Any:
        values = self.values
        whole = _WHOLE.match(value)
        if whole:
            name = whole.group(1)
            if name not in values:
                self.missing(name, path)
                return value
            self.doc.origins[path] = self.origin(name, path)
            return values[name]

        def one(m: re.Match[str]) -> str:
            if m.group(1):  # $${...}: a literal ${...}
                return m.group(0)[1:]
            name = m.group(2)
            if name not in values:
                self.missing(name, path)
                return m.group(0)
            v = values[name]
            return ("true" if v else "false") if isinstance(v, bool) else str(v)

        return _REF.sub(one, value)

    def walk(self, node: dict[Any, Any] | list[Any], path: Path_) -> None:
        # in place; a path is built only for a container or a string that holds a reference
        for k, item in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(item, str):
                if "${" in item:
                    node[k] = self.text(item, path + (k,))
            elif isinstance(item, (dict, list)):
                self.walk(item, path + (k,))
