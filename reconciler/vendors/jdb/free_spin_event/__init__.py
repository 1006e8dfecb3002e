"""Kind ``FreeSpinEvent``: a JDB free-spin reward event and the players bound to it.

Identity is ``metadata.name``; JDB knows events by ``eventId`` and display ``name`` only, so a
manifest is matched to the live event of its ``agent`` with the same display name; when none has
it, to the one unclaimed live event whose every returned field but the name agrees (end and spins
seen) and to which its first declared player is bound (a rename); when still none, to a TERMINATED
event with its name (or a unique terminated twin).

Reads: one Action 76 per agent over a wide time window, plus Action 71 within a per-run budget
(:data:`PLAYER_READ_BUDGET`) for player membership — JDB has no call that lists an event's players.
A field is compared only when a reply carries it (the documented Action 76 reply stops at
``startTime``; Action 71 rows add ``times``, ``endTime`` and ``updateTime``). Fields no reply
carries are compared against the last applied plan when one is given (``--last-applied``), else the
plan says a change to them cannot be verified.

Money safety: an event that ended outside the product (terminated out of band, or expired) is never
created again unless ``spec.grantAgainAfter`` names it; a declared window already past is
"expired", nothing to do. An event JDB does not show whose start is more than its retention (180
days) past may have been stopped and forgotten: its create is blocked unless
``spec.createAfterRetention`` says it was never granted (the export writes it for running events).

Writes (every one safe to repeat; a lost reply is read back by key before any repeat):

- create: Action 72 without players under ``transactionId`` = a UUIDv5 of the key scope (``--env``
  and named connection), agent, identity and generation; Action 76 by the answered ``eventId``
  confirms it is the declared event (every returned field agrees) before anyone is bound; then
  Action 74 in calls of 50,000. An answer naming another event is an error with nobody bound. Only
  an opt-in (replace, ``grantAgainAfter``) moves on to the next key when the key's event has ended;
- update: Action 77 for name, machine types, bet and withdrawals; Action 74 for missing players
  (only with a manifest change, ``spec.allowRebind`` or ``--force``: a player unbound outside the
  product is not bound again silently); Action 75 for ``excludedPlayers`` still bound (only while
  INACTIVE, as JDB requires). Money fields and players of an ACTIVE event need
  ``spec.allowLiveChanges`` or ``--force``;
- replace (type, times, start/end, bonus chips changed): create the new event first under a key
  derived from the declared content, confirm it, terminate (73) the old one, bind; needs
  ``--allow-replace`` or ``spec.allowReplace``, and ``spec.allowLiveChanges``/``--force`` when the
  event is ACTIVE. A replace planned again for the same manifest gets the same event back and
  stops: it terminates and creates at most once per manifest change;
- delete: only inside a ``PruneScope`` (``agent`` + ``namePrefix``), never an ACTIVE event without
  ``--force``.

Status and usage counters (spins used, cash-out) are observed, never drift.

The package, one idea a module: :mod:`.spec` (the declared input), :mod:`.rules` (the spec
against the connection), :mod:`.keys` (idempotency keys), :mod:`.compare` (normalised views),
:mod:`.read` (live reads and matching), :mod:`.exposure` (money figures), :mod:`.plan` (the
decisions), :mod:`.changes` (the Change each decision becomes), :mod:`.writes` (apply),
:mod:`.export` and :mod:`.kind` (the contract's hooks).
"""

from reconciler.vendors.jdb.free_spin_event.compare import desired_view, live_view, _Live
from reconciler.vendors.jdb.free_spin_event.export import export_event
from reconciler.vendors.jdb.free_spin_event.exposure import exposure
from reconciler.vendors.jdb.free_spin_event.keys import TRANSACTION_NAMESPACE, key_scope, replacement_id, transaction_id
from reconciler.vendors.jdb.free_spin_event.kind import FreeSpinEventKind
from reconciler.vendors.jdb.free_spin_event.rules import bet_problems, declared_currency, locked_bets
from reconciler.vendors.jdb.free_spin_event.spec import (
    PLAYER_READ_BUDGET,
    VERIFY_LIMIT,
    FreeSpinEventScope,
    FreeSpinEventSpec,
    declared_players,
    read_players_file,
    spec_problems,
)
from reconciler.vendors.jdb.free_spin_event.writes import _bind

__all__ = [
    "PLAYER_READ_BUDGET",
    "TRANSACTION_NAMESPACE",
    "VERIFY_LIMIT",
    "FreeSpinEventKind",
    "FreeSpinEventScope",
    "FreeSpinEventSpec",
    "_Live",
    "_bind",
    "bet_problems",
    "declared_currency",
    "declared_players",
    "desired_view",
    "export_event",
    "exposure",
    "key_scope",
    "live_view",
    "locked_bets",
    "read_players_file",
    "replacement_id",
    "spec_problems",
    "transaction_id",
]
