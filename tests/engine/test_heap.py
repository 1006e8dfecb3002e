"""The collector during a run (engine/heap.py): paused while a load makes its objects, and in the
``reconciler`` process (one command, then exit), those objects frozen after it. Each case runs in
its own interpreter: freezing is a process-wide state the test process must not take on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.bestproxy.conftest import Workspace, account_doc

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


def test_the_installed_command_freezes_what_it_loaded(bestproxy_ws: Workspace, tmp_path: Path) -> None:
    """The entry point takes the one-command policy: the objects ``validate`` loaded from 300
    documents are frozen as the load returns; a caller of the library (``cli`` without ``main``)
    freezes nothing."""
    bestproxy_ws.write("manifests/a.yaml", "---\n".join(account_doc(f"game{i:03d}") for i in range(300)))
    probe = (
        "import gc, sys; import reconciler.engine.load as L; orig = L.load_manifests\n"
        "def load(*a, **k):\n"
        "    before = gc.get_freeze_count(); out = orig(*a, **k)\n"
        "    sys.stderr.write(f'newly frozen={gc.get_freeze_count() - before}\\n'); return out\n"
        "L.load_manifests = load\n"
        "from reconciler.cli import cli, main; sys.argv[0] = 'reconciler'; entry = sys.argv.pop(1)\n"
        "main() if entry == 'main' else cli(['validate'], prog_name='reconciler')"
    )
    frozen = {}
    for entry in ("main", "library"):
        args = [entry, "validate"] if entry == "main" else [entry]
        r = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=bestproxy_ws.root,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert r.returncode == 0 and "Valid: 300 resource(s)" in r.stdout, r.stdout + r.stderr
        frozen[entry] = int(r.stderr.rsplit("newly frozen=", 1)[1])
    assert frozen["main"] >= 300 * 3 and frozen["library"] == 0, frozen


def test_a_load_leaves_no_garbage_per_document(bestproxy_ws: Workspace) -> None:
    """What a load throws away is freed by reference counting, not left as cycles for the collector
    (in the ``reconciler`` process they would stay frozen until exit): 300 documents leave no
    cycle per document. (The variable substitution's recursive closures left 18 objects for each
    document it walked.)"""
    docs = [account_doc(f"game{i:03d}") for i in range(300)]
    bestproxy_ws.write("manifests/a.yaml", "---\n".join(docs))
    probe = (
        "import gc, sys; import reconciler.engine.load as L; orig = L.load_manifests\n"
        "def load(*a, **k):\n"
        # the collector off before the load, so that it stays off after (as when frozen): the
        # garbage is still there for one collection that keeps it (DEBUG_SAVEALL) to count
        "    gc.collect(); gc.disable(); out = orig(*a, **k); gc.set_debug(gc.DEBUG_SAVEALL); gc.collect()\n"
        "    sys.stderr.write(f'garbage={len(gc.garbage)}\\n'); gc.set_debug(0); gc.garbage.clear(); gc.enable()\n"
        "    return out\n"
        "L.load_manifests = load\n"
        "from reconciler.cli import cli; cli(['validate'], prog_name='reconciler')"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=bestproxy_ws.root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert r.returncode == 0 and "Valid: 300 resource(s)" in r.stdout, r.stdout + r.stderr
    assert int(r.stderr.rsplit("garbage=", 1)[1]) < 300, r.stderr
