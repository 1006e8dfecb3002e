"""The TcaplusDB test tables, credentials and workspace. The fixtures (one emulator per test session
on 127.0.0.1, port 0, emptied before every test: ``tcaplus_server``, ``tcaplus_emulator``,
``tcaplus_client``, ``tcaplus_ws``) are in tests/conftest.py: tests outside this folder use them too."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


from tests.support import CliWorkspace
from reconciler.clients.http import RetryPolicy
from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator

DATA = Path(__file__).parent / "data"
APP_ID = 2  # the manual's sample URLs use apps/2/zones/1
ZONE_ID = 1
PASSWORD = "c3eda5f013f92c81dda7afcdc273cf82"  # the manual's example AppKey
PASSWORD_MD5 = hashlib.md5(PASSWORD.encode()).hexdigest()  # 879423b88d153cace7b31773a7f46039
TABLES = {"tb_example": DATA / "tb_example.proto", "game_players": DATA / "game_players.proto"}
NO_WAIT = RetryPolicy(attempts=3, timeout=10.0, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)


@dataclass
class Workspace(CliWorkspace):
    """A folder with reconciler.yaml pointing at the emulator, the two test tables and a password file."""

    emulator: TcaplusEmulator
    client: TcaplusClient

    def requests(self) -> int:
        return sum(self.emulator.stats.values())
