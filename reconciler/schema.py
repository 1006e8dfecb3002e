"""JSON Schemas generated from the same pydantic models that validate input (one source of truth)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from reconciler.engine.load import API_VERSION, SCOPE_KIND, Metadata, ScopeSpec
from reconciler.kinds import KINDS
from reconciler.manifest.config import config_model

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _const(value: str) -> Any:
    """``Literal[value]`` for a value known only at run time (a field type, not a static annotation)."""
    return Literal[value]


def _document_model(kind: str, spec: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{kind}Document",
        __config__=ConfigDict(extra="forbid"),
        apiVersion=(_const(API_VERSION), ...),
        kind=(_const(kind), ...),
        metadata=(Metadata, ...),
        spec=(spec, ...),
    )


def manifest_schema() -> dict[str, Any]:
    """One schema for every manifest document, its branches keyed on ``kind`` (``if``/``then``): an
    editor validates a document against its own kind only and reports the exact field, instead of
    one ``oneOf`` failure listing every kind."""
    models = [(name, _document_model(name, cls.Spec)) for name, cls in sorted(KINDS.items())]
    models.append((SCOPE_KIND, _document_model(SCOPE_KIND, ScopeSpec)))
    defs: dict[str, Any] = {}
    branches = []
    for kind, m in models:
        s = m.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(s.pop("$defs", {}))
        defs[m.__name__] = s
        branches.append(
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": f"#/$defs/{m.__name__}"},
            }
        )
    return {
        "$schema": DRAFT,
        "title": "reconciler manifest document",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": [kind for kind, _ in models], "description": "the resource kind; picks the schema of spec"},
        },
        "allOf": branches,
        "$defs": defs,
    }


def config_schema() -> dict[str, Any]:
    s = config_model().model_json_schema()
    s["$schema"] = DRAFT
    return s
