"""TcaplusDB's command-line wiring: the ``--index`` option of ``reconciler export manifests``."""

from __future__ import annotations

import json
from typing import Any

from reconciler.errors import UsageError
from reconciler.vendor import ExportOption


def parse_index(value: str) -> tuple[str, str, dict[str, Any]]:
    """``TABLE:INDEX:{"field": value, ...}`` -> ``(table, index, keys)``."""
    table, sep, rest = value.partition(":")
    index, sep2, keys = rest.partition(":")
    try:
        parsed = json.loads(keys) if sep and sep2 else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not parsed or not table or not index:
        raise UsageError(f'--index {value}: expected TABLE:INDEX:{{"field": value, ...}} (a JSON object)')
    return table, index, parsed


EXPORT_OPTIONS = (
    # read by TcaplusRecordsKind.export (request.extra["index_keys"])
    ExportOption(
        flag="--index",
        key="index_keys",
        metavar='TABLE:INDEX:{"k":v}',
        parse=parse_index,
        help="Also read TcaplusDB records under this index key (repeatable).",
    ),
)
