"""Kind ``TcaplusRecords``: seed records of one TcaplusDB table (identity = table + primary key).

A document declares records of ``table`` (a table of ``providers.tcaplus.tables``, whose ``.proto``
gives the schema) inline (``records:``) or in a data file (``file:``, JSON Lines or YAML, relative
to the manifest). Every record is checked against the table's schema before any call.

``mode``:

- ``declared`` (default): only the fields a record declares are managed (leaf by leaf, nested
  messages included; a repeated field is one value). Other fields of the live record are kept.
- ``whole``: the record is the whole record; live fields it does not declare are cleared.

Reads: GetRecord per record (``select`` = the declared fields in declared mode), with bounded
concurrency; records under an optional ``prune`` scope (an index and its key values) are read
with paged PartkeyGetRecord calls instead. Fields absent from a live record compare equal to
their protobuf defaults, ``float`` values are compared at float32 precision and ``bytes`` by
content, so a read-back never shows phantom drift. ``RecordVersion`` is the change's precondition
and never a diff.

Writes (every one checked against the version seen when planning, DESIGN.md principle 3):

- create: AddRecord. If the key exists by then (-1293), or the reply was lost, the record is read
  back: with the declared values it is done, otherwise it is reported stale and left alone.
- update: the record is read; a different version (or a deleted record) is stale. Otherwise the
  new record — the declared record (whole), or the live record with the declared fields set
  (declared) — is written with SetRecord under version check 1 (``x-tcaplus-data-version-check:
  1``, the planned version): a concurrent writer makes it fail with -7949, reported stale. The
  manual gives FieldSetRecord no version check (only Add and Set), so declared mode does not use it.
- delete: only records inside a declared ``prune`` scope that no document declares. The record is
  read first and deleted only if its version is still the planned one (DeleteRecord has no
  version check of its own).

The package, one idea a module: :mod:`.spec` (the declared input model), :mod:`.declared` (records
and data files, table schemas), :mod:`.compare` (normalise and diff), :mod:`.plan`, :mod:`.writes`
(apply), :mod:`.export` and :mod:`.kind` (validation and the contract's hooks).
"""

from reconciler.vendors.tcaplus.records.compare import _diffs, _has_structs, _leaf_diffs, _leaf_paths, _leaves, _walk_leaves
from reconciler.vendors.tcaplus.records.declared import _json_lines, identity, table_schema
from reconciler.vendors.tcaplus.records.kind import TcaplusRecordsKind
from reconciler.vendors.tcaplus.records.plan import MAX_INDEX_KEYSETS, MAX_UNMANAGED_ROWS, index_keysets
from reconciler.vendors.tcaplus.records.spec import PruneSpec, TcaplusRecordsSpec

__all__ = [
    "MAX_INDEX_KEYSETS",
    "MAX_UNMANAGED_ROWS",
    "PruneSpec",
    "TcaplusRecordsKind",
    "TcaplusRecordsSpec",
    "_diffs",
    "_has_structs",
    "_json_lines",
    "_leaf_diffs",
    "_leaf_paths",
    "_leaves",
    "_walk_leaves",
    "identity",
    "index_keysets",
    "table_schema",
]
