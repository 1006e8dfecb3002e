"""The kind contract (:mod:`.base`), shared write helpers (:mod:`.writes`) and the registry of kinds.

Kinds belong to vendors: each vendor's :class:`reconciler.vendor.VendorSpec` lists its kinds (imported
explicitly, so a misspelled module fails loudly); :data:`KINDS` is their union, by kind name, built on
first use from the installed vendors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.kinds.base import Kind


class _Kinds(Mapping[str, type[Kind[Any, Any]]]):
    """Kind name -> kind class of every installed vendor (loaded once, on first use)."""

    def __init__(self) -> None:
        self._kinds: dict[str, type[Kind[Any, Any]]] | None = None

    def _load(self) -> dict[str, type[Kind[Any, Any]]]:
        if self._kinds is None:
            from reconciler.vendor import RegistryError, vendors

            found: dict[str, type[Kind[Any, Any]]] = {}
            for name, spec in vendors().items():
                for cls in spec.kinds():
                    if not (isinstance(cls, type) and issubclass(cls, Kind)):
                        raise RegistryError(f"vendor {name}: {cls!r} is not a reconciler.kinds.base.Kind")
                    if cls.vendor != name:
                        raise RegistryError(f"vendor {name}: kind {cls.kind} says its vendor is {cls.vendor!r}")
                    if cls.kind in found:
                        raise RegistryError(f"kind {cls.kind} is declared by vendors {found[cls.kind].vendor} and {name}")
                    found[cls.kind] = cls
            self._kinds = found
        return self._kinds

    def __getitem__(self, name: str) -> type[Kind[Any, Any]]:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


KINDS: Mapping[str, type[Kind[Any, Any]]] = _Kinds()
