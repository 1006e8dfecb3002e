"""Emulator of the JDB platform API: ``/apiRequest.do`` with the AES-128-CBC envelope.

Written from ``reference/seeds/jdb-action29-transactions.txt``, ``jdb-action71-player-free-spins.txt``,
``jdb-action72-create-free-spin.zh.txt`` (the contract) and ``reference/jdb.md``, independently of
the client. Actions: 29 (transaction details), 71 (a player's free-spin events), 72 (create),
73 (terminate), 74 (bind players), 75 (unbind players), 76 (search events), 77 (update).

Wire format
-----------
- ``GET`` with ``dc``/``x`` (and the optional envelope ``parent``) in the query string, ``POST``
  form-urlencoded or ``POST`` JSON body; a non-empty body value wins over the query value.
- ``x``: URL-safe or standard Base64, with or without ``=``; AES-128-CBC with the key and IV used as
  their 16 ASCII bytes, no built-in padding; every trailing byte ``<= 0x20`` is stripped after
  decryption (zero bytes, spaces and PKCS#7 bytes alike), then the UTF-8 JSON object is read.
- Answers are JSON, HTTP 200, ``{"status": "0000", "data": ...}`` or ``{"status": code,
  "err_text": text}``; gzip-compressed when the request sends ``Accept-Encoding: gzip``. Unknown
  paths answer 404, other methods 405 (plain JSON errors, no JDB status, so a wrong URL is not mistaken for 'busy'), an injected fault HTTP 503 with status ``9999``.
  Knob ``busy_status``: the status an injected fault answers — ``"9999"`` (the default: the code
  table's generic failure, as HTTP 503) or one of the code table's "try again" statuses, ``"9012"``
  (try again later), ``"9017"`` (work in process, try again later) and ``"9019"`` (request rate
  limit exceeded), with HTTP 200 like every other status (the documents give error answers no
  other HTTP status).
- Envelope checks, in order: ``dc`` missing or shorter than 2 characters ``9002``; wrong ``dc``
  ``9003``; ``x`` missing ``9004``; ``x`` not decryptable to a JSON object ``9006``; ``ts`` missing
  ``8000``; ``ts`` more than 30 s away from the server clock (either direction) ``9005``; unknown
  ``action`` ``9007``; ``parent`` missing ``8000``, unknown agent (payload or envelope) ``7001``.

Semantic decisions where the documents are silent (see also ``reference/jdb.md`` §8)
---------------------------------------------------------------------------------
- Parameter errors use ``8000`` and the documented text ``... parameter:<name> is required``; a
  present but invalid value uses the same prefix with ``<name> is invalid`` (or a short reason).
  Money values with more than three decimals answer ``8014``.
- ``eventId`` is a Long (doc generation G2) in answers and is accepted as a number or a string of
  digits in requests.
- Event status is derived from the clock: ``INACTIVE`` before ``startTime``, ``ACTIVE`` until
  ``endTime``, then ``EXPIRED``; ``TERMINATED`` after Action 73 (which is refused for EXPIRED and
  TERMINATED events with ``9998 This action cannot be executed as the event status is <STATUS>.``).
- Action 72: ``endTime`` must be later than ``startTime`` and, for a new event, than now
  (``8000``). A repeated ``transactionId`` (per agent) creates nothing and answers the existing
  ``eventId`` (seed); knob ``repeat_transaction``: ``"answer"`` (default) binds nothing and answers
  empty player lists, ``"bind"`` also binds the players sent (while the event is INACTIVE or
  ACTIVE) and answers their lists (after the parameter checks, before the
  end-time-versus-now check, so a late retry still finds its event). ``players`` holds at most 50,000 entries; unknown players come back in
  ``notExistedPlayers``, players registered as locked in ``failedBindingPlayers``. ``BONUSCHIPS``
  requires ``bonusChips`` and ``chipsMultiplier`` (``times`` is not used).
- Action 74 binding an already bound player: knob ``bind_bound`` — ``"noop"`` (default; not
  reported), ``"failed"`` (listed in ``failedBindingPlayers``, the binding stays) or ``"error"``
  (the whole call refused, ``9998`` with a guessed text, nothing bound);
  Action 75 unbinding a player who is not bound is a no-op.
- Action 76 returns events whose ``startTime >= startTime`` and ``endTime <= endTime`` of the
  query (containment); ``name`` is an exact match. Knob ``search_fields``: ``"documented"`` (the
  default) answers only the fields the document lists (``eventId`` … ``startTime``, see
  :data:`A76_DOCUMENTED`); ``"extended"`` adds the ones the truncated table presumably holds
  (``endTime``, ``times``, ``bet``, ``minWithdrawal``, ``maxWithdrawal``, ``bonusChips``,
  ``chipsMultiplier``, ``requiredTurnover``, ``updateTime``) — a guess, tested as one.
- Action 72 ``times``: the seed marks it mandatory (``Y``) for every type. Knob
  ``bonuschips_times``: ``"required"`` (the default, as the seed says) refuses a BONUSCHIPS create
  without it (``8000 ... parameter:times is required``); ``"ignored"`` accepts its absence (as the
  newer pages that add BONUSCHIPS suggest). A BONUSCHIPS event does not use times; knob
  ``bonuschips_times_answer``: ``"null"`` (default, as the Action 71 seed says) or ``"echo"``
  (Action 71/76 answer the ``times`` the create sent).
- Action 77 requires ``name``, ``machineTypes``, ``bet``, ``minWithdrawal`` and ``maxWithdrawal``;
  ``type``/``times`` may be sent but must equal the stored values. Knob ``update_fields``:
  ``"newest"`` (default; ``startTime``/``endTime`` may be sent but must equal the stored values, as
  the newest page says) or ``"older"`` (both mandatory and updated, as the older pages list them).
  Only INACTIVE and ACTIVE events can be updated; knob ``update_active``: ``"allowed"`` (default)
  or ``"refused"`` (an ACTIVE event answers ``9998`` with the status text).
- Event retention (seed, Action 71: "retained for 180 days after the free spin reward expires").
  Knob ``event_retention_days``: ``180`` (the default) or ``None`` (kept forever, as this emulator
  did before). How an event disappears is a guess: once its retention is over, the event, its
  bindings and its ``transactionId`` are gone from every action (71 and 76 no longer list it; 73,
  74, 75, 77 answer "Event not exist."; a repeated ``transactionId`` creates anew). When a
  TERMINATED event "expires" is not written either; knob ``event_retention_from``: ``"end"`` (the
  default: every event is kept that many days after its ``endTime``, terminated ones too) or
  ``"stop"`` (a TERMINATED event is kept that many days after it was terminated (Action 73), which
  can be long before its ``endTime``; an EXPIRED one after its ``endTime``). The time of
  termination is stored with the event (``terminated_ms``; state kept before the column existed
  takes the event's update time, which Action 73 set last).
- Action 29 reads ``starttime``/``endtime`` as JDB wall-clock time and includes records whose
  ``lastModifyTime`` lies in ``[starttime, endtime]`` — both ends inclusive, so a record stamped
  ``hh:mm:00`` appears in two adjacent windows. Knob ``report_tz``: the report zone, which no seed
  states (default GMT-4, as one public integration treats it; tests also run UTC and UTC+8).
  Seconds other than ``00`` answer ``8005``; a span over 15 minutes or an end before the start
  ``8009``. Knob ``report_too_old``: a start older than 2 hours is refused with ``8006``
  (``"refuse"``, the default) or answered ``0000`` with no records (``"empty"``) — the seed says
  only that 2 hours are served. Records newer than 3 minutes are not shown (a window in the
  future answers ``0000`` with no records). Records are generated deterministically per agent and minute, 0–3 a minute, with the
  per-game-type shapes of the seed.

Player registry
---------------
Without ``players`` every agent has the deterministic sandbox players ``player00001`` …
``player99999``; with ``players`` exactly those. More can be registered at any time with
:meth:`JdbEmulator.register_players` or ``POST /_sandbox/jdb/players`` (``{"agent": ...,
"players": [...], "locked": false}``); ``GET /_sandbox/jdb/players?agent=...`` counts them.
(The HTTP admin route is served through :meth:`JdbEmulator.admin`, which the server must route
``/_sandbox/jdb/...`` paths to.)

Back-office events
------------------
An event made in JDB's back office rather than through Action 72:
:meth:`JdbEmulator.create_back_office_event` or ``POST /_sandbox/jdb/events`` (``{"agent": ...,
"event": {Action 72 fields, no transactionId}, "players": [...], "hidden": ["endTime", "bet"]}``).
``hidden`` names Action 76 answer fields JDB leaves out for that event (as issue 22 saw: no
``endTime``/``bet``), whatever ``search_fields`` says; ``endTime`` may be in the past. Answers
``{"eventId": ...}``.

Test helpers (not vendor API): :meth:`JdbEmulator.stored_events` returns every stored event with
all its fields whatever ``search_fields`` says; :attr:`JdbEmulator.action_counts` counts handled
requests per action.

Modules
-------
:mod:`.protocol` (codes, texts, knob values, parameter readers, the envelope), :mod:`.store` (the
knobs and the SQLite state), :mod:`.free_spins` (Actions 71-77, back-office events),
:mod:`.transactions` (Action 29), :mod:`.api` (the HTTP side: :class:`JdbEmulator`).
"""

from __future__ import annotations

from reconciler.vendors.jdb.emulator.api import JdbEmulator
from reconciler.vendors.jdb.emulator.protocol import (
    A76_DOCUMENTED,
    BUSY_ANSWERS,
    EVENT_RETENTION_DAYS,
    JDB_REPORT_TZ,
    KNOBS,
    MAX_PLAYERS,
    PARAM,
    decrypt_envelope,
)

# the emulator's import path stays reconciler.vendors.jdb.emulator (tests, the sandbox hook, bench)
__all__ = [
    "A76_DOCUMENTED",
    "BUSY_ANSWERS",
    "EVENT_RETENTION_DAYS",
    "JDB_REPORT_TZ",
    "KNOBS",
    "MAX_PLAYERS",
    "PARAM",
    "JdbEmulator",
    "decrypt_envelope",
]
