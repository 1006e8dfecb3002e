"""Turn pydantic validation errors into :class:`Problem` lines that point at the manifest."""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from reconciler.errors import Problem
from reconciler.manifest.yamlload import Document, Path_, dotted

_YAML11_WORDS = {"yes", "no", "on", "off", "y", "n"}


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind.startswith("value_error"):
        msg = msg.removeprefix("Value error, ")
    if kind == "string_type" and isinstance(err.get("input"), bool):
        msg += " (quote it: an unquoted true/false is a boolean)"
    if kind in ("bool_type", "bool_parsing") and isinstance(err.get("input"), str) and err["input"].lower() in _YAML11_WORDS:
        msg += " (use true or false: manifests are read as YAML 1.2)"
    return str(msg)


def problems_from_validation(exc: ValidationError, doc: Document, *, prefix: Path_ = (), resource: str = "") -> list[Problem]:
    """One problem per pydantic error. Input values are never echoed (they may be secrets)."""
    out = []
    for err in exc.errors(include_input=True, include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # drop discriminator/union tags that pydantic inserts into loc
        path = prefix + tuple(loc)
        while path and path not in doc.marks and path not in doc.key_marks and len(path) > len(prefix):
            # union branches add loc parts that do not exist in the data
            if _exists(doc.data, path):
                break
            path = path[:-1]
        key = err["type"] == "extra_forbidden"
        out.append(doc.problem(path, _message(err), resource=resource, key=key, field_path=dotted(prefix + tuple(loc))))
    return out


def _exists(data: Any, path: Path_) -> bool:
    cur = data
    for p in path:
        try:
            cur = cur[p]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def validate_model(
    model: type[BaseModel],
    data: Any,
    doc: Document,
    *,
    prefix: Path_ = (),
    resource: str = "",
    context: dict[str, Any] | None = None,
) -> tuple[BaseModel | None, list[Problem]]:
    try:
        return model.model_validate(data, context=context), []
    except ValidationError as exc:
        return None, problems_from_validation(exc, doc, prefix=prefix, resource=resource)
