"""Action 29 (transaction details): deterministic records per agent and minute, in the per-game-type
shapes of the seed, read through the report zone and window rules of the package docstring.
"""

from __future__ import annotations

import random
from datetime import datetime, tzinfo
from typing import Any

from reconciler.vendors.jdb.emulator.protocol import (
    _REPORT,
    REPORT_HISTORY_MS,
    REPORT_LAG_MS,
    REPORT_MAX_SPAN_MS,
    TEXT_RANGE,
    _Fail,
    _int_list,
    _ms,
    _need,
    _param,
    _present,
)
from reconciler.vendors.jdb.emulator.store import JdbState

# -- Action 29 record shapes (seed: per gType family) ----------------------------------------
SLOT, FISHING, ARCADE, LOTTERY, CARD, HRG = (0, 66, 90), (7, 67, 91), (9, 92), (12,), (18, 93), (41,)
THIRD_PARTY = (22, 30, 31, 32, 50, 55, 56, 57, 58, 59, 60, 70, 75, 80, 81, 101, 120, 130, 131, 132)
GAME_TYPES = SLOT + FISHING + ARCADE + LOTTERY + CARD + HRG + THIRD_PARTY


def _money_round(value: float) -> float:
    return round(value, 3)


def _base_record(rnd: random.Random, gtype: int) -> dict[str, Any]:
    denom = rnd.choice((0.01, 0.02, 0.05, 0.1, 1.0))
    bet = -_money_round(denom * rnd.choice((10, 20, 25, 50)))
    win = _money_round(-bet * rnd.choice((0, 0, 0, 0.5, 1, 2, 5)))
    before = _money_round(rnd.uniform(100, 10_000))
    return {
        "gType": gtype,
        "mtype": gtype * 1000 + rnd.randint(1, 99),
        "bet": bet,
        "win": win,
        "total": _money_round(bet + win),
        "currency": "RB",
        "denom": denom,
        "beforeBalance": f"{before:.3f}",
        "afterBalance": f"{_money_round(before + bet + win):.3f}",
        "playerIp": f"10.20.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
        "clientType": rnd.choice(("WEB", "MOBILE")),
    }


def _shape(rec: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    """Keep and add the fields the seed lists for the record's game-type family."""
    g = rec["gType"]
    common = [
        "historyId",
        "playerId",
        "gType",
        "mtype",
        "gameDate",
        "bet",
        "win",
        "total",
        "currency",
        "lastModifyTime",
        "beforeBalance",
        "afterBalance",
    ]
    if g in SLOT:
        rec.update(
            jackpot=0, jackpotContribute=_money_round(rec["bet"] * 0.005), hasFreegame=rnd.choice((0, 0, 1)), systemTakeWin=0
        )
        keep = common + ["jackpot", "jackpotContribute", "denom", "playerIp", "clientType", "hasFreegame", "systemTakeWin"]
    elif g in FISHING:
        rec.update(
            roomType=rnd.choice((-1, 0, 1, 2)), beforeBalance=float(rec["beforeBalance"]), afterBalance=float(rec["afterBalance"])
        )
        keep = common + ["roomType", "denom", "playerIp", "clientType"]
    elif g in ARCADE:
        gamble = rnd.random() < 0.2
        rec.update(gambleBet=rec["bet"] if gamble else 0, hasBonusGame=0, hasGamble=int(gamble))
        if gamble:
            rec["bet"] = 0
        keep = common + ["gambleBet", "denom", "playerIp", "clientType", "hasBonusGame", "hasGamble"]
    elif g in LOTTERY:
        rec.update(hasBonusGame=0)
        keep = common + ["denom", "playerIp", "clientType", "hasBonusGame"]
    elif g in CARD:
        tax = -_money_round(rec["win"] * 0.05) or 0.0
        rec.update(roundSeqNo=rnd.randint(1, 10**6), tax=tax, validBet=rec["bet"], total=_money_round(rec["total"] + tax))
        keep = common + ["roundSeqNo", "tax", "playerIp", "clientType", "validBet"]
    elif g in HRG:
        rec.update(roundSeqNo=f"RND-{rnd.randint(10**12, 10**13 - 1)}", validBet=rec["bet"], commission=0)
        keep = common + ["roundSeqNo", "validBet", "commission"]
    else:
        keep = common
    return {k: rec[k] for k in keep}


def _report_time(ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%d-%m-%Y %H:%M:%S")


class TransactionActions(JdbState):
    """Action 29 and its test helper :meth:`transactions_between`."""

    # -- Action 29 --------------------------------------------------------------------------
    def _report_ms(self, p: dict[str, Any], name: str) -> int:
        value = _need(p, name)
        match = _REPORT.match(value) if isinstance(value, str) else None
        if match is None:
            raise _param(name, "is invalid")
        day, month, year, hour, minute, second = (int(g) for g in match.groups())
        if second != 0:
            raise _Fail("8005", f"The seconds of {name} must be 00.")
        try:
            return _ms(datetime(year, month, day, hour, minute, tzinfo=self.report_tz))
        except ValueError:
            raise _param(name, "is invalid") from None

    def _a29_transactions(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        start = self._report_ms(p, "starttime")
        end = self._report_ms(p, "endtime")
        if end < start or end - start > REPORT_MAX_SPAN_MS:
            raise _Fail("8009", TEXT_RANGE)
        now = self._now_ms()
        if start < now - REPORT_HISTORY_MS:
            if self.report_too_old == "empty":
                return {"status": "0000", "data": []}
            raise _Fail("8006", "starttime is more than 2 hours ago; use Action 64 for older records.")
        game_types = set(_int_list(p["gTypes"], "gTypes", minimum=0) if _present(p, "gTypes") else GAME_TYPES)
        newest = min(end, now - REPORT_LAG_MS)
        records = [
            r
            for minute in range(start // 60_000, newest // 60_000 + 1)
            for stamp, r in self._minute_records(agent, minute)
            if start <= stamp <= newest and r["gType"] in game_types
        ]
        return {"status": "0000", "data": records}

    def transactions_between(self, agent: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Test helper (not vendor API): every record of ``agent`` whose ``lastModifyTime`` instant
        lies in ``[start, end)``, whatever the report zone, oldest first."""
        lo, hi = _ms(start), _ms(end)
        return [
            r
            for minute in range(lo // 60_000, hi // 60_000 + 1)
            for stamp, r in self._minute_records(agent, minute)
            if lo <= stamp < hi
        ]

    def _minute_records(self, agent: str, minute: int) -> list[tuple[int, dict[str, Any]]]:
        """The deterministic records whose lastModifyTime falls in one minute, oldest first."""
        rnd = random.Random(f"jdb-a29|{agent}|{minute}")
        players = self._sample_players()
        out = []
        for i in range(rnd.randint(0, 3)):
            second = 0 if i == 0 and rnd.random() < 0.3 else rnd.randint(0, 59)
            stamp = minute * 60_000 + second * 1000
            rec = _base_record(rnd, rnd.choice(GAME_TYPES))
            rec.update(
                historyId=str(5_250_000_000_000 + minute * 10 + i),
                playerId=rnd.choice(players),
                gameDate=_report_time(stamp - rnd.randint(0, 9) * 1000, self.report_tz),
                lastModifyTime=_report_time(stamp, self.report_tz),
            )
            out.append((stamp, _shape(rec, rnd)))
        return sorted(out, key=lambda pair: pair[0])
