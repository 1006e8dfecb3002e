"""The collector during a run (engine/heap.py): paused while a load makes its objects, and in the
``reconciler`` process (one command, then exit), those objects frozen after it. Each case runs in
its own interpreter: freezing is a process-wide state the test process must not take on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.bestproxy.conftest import Workspace, account_doc, bp  # noqa: F401 - the fixture

PROBE = """
import gc, json, sys, weakref
from reconciler.engine import heap
if sys.argv[1] == "one-run":
    heap.one_run()
out = {"frozen_before": gc.get_freeze_count()}
class Node:
    pass
try:
    with heap.long_lived():
        out["enabled_inside"] = gc.isenabled()
        made = [Node() for _ in range(5000)]
        alive = weakref.WeakSet(made)
        for n in made:
            n.me = n  # a cycle each: only the cyclic collector can free them
        del made, n
        raise KeyError("the load failed")
except KeyError:
    pass
out["enabled_after"] = gc.isenabled()
out["frozen_after"] = gc.get_freeze_count()
gc.collect()
out["nodes_left"] = len(alive)
gc.unfreeze()
gc.collect()
out["nodes_left_unfrozen"] = len(alive)
print(json.dumps(out))
"""


def _probe(mode: str) -> dict[str, object]:
    r = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_load_pauses_the_collector_and_leaves_its_objects_to_it_elsewhere() -> None:
    """In a test or a library's caller: paused while the objects are made, on again after (even
    when the load fails), nothing frozen, and their cycles collected as before."""
    out = _probe("library")
    assert out["enabled_inside"] is False and out["enabled_after"] is True
    assert out["frozen_before"] == out["frozen_after"] == 0
    assert out["nodes_left"] == 0


def test_in_a_one_command_process_what_a_load_makes_is_frozen() -> None:
    """``one_run`` (the installed command): the imported objects and then the load's are frozen, so a
    full collection no longer walks them; cycles among them stay until exit (or ``gc.unfreeze``)."""
    out = _probe("one-run")
    assert out["enabled_inside"] is False and out["enabled_after"] is True
    assert out["frozen_before"] > 1000  # the interpreter's and the imported modules' objects
    assert out["frozen_after"] >= out["frozen_before"] + 5000
    assert out["nodes_left"] == 5000
    assert out["nodes_left_unfrozen"] == 0


def test_the_installed_command_freezes_what_it_loaded(bp: Workspace, tmp_path: Path) -> None:  # noqa: F811
    """The entry point takes the one-command policy: after ``validate`` loaded 300 documents, the
    frozen objects include them (compared with a command that loads nothing)."""
    bp.write("manifests/a.yaml", "---\n".join(account_doc(f"game{i:03d}") for i in range(300)))
    probe = ("import atexit, gc, sys; atexit.register(lambda: sys.stderr.write(f'frozen={gc.get_freeze_count()}\\n')); "
             "from reconciler.cli import main; sys.argv[0] = 'reconciler'; main()")
    frozen = {}
    for args in (["--version"], ["validate"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], cwd=bp.root, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "NO_COLOR": "1"})
        assert r.returncode == 0, r.stderr
        frozen[args[0]] = int(r.stderr.rsplit("frozen=", 1)[1])
    assert frozen["validate"] > frozen["--version"] + 300 * 10, frozen
