#!/usr/bin/env python3
"""Check that the lower bounds in pyproject.toml are true: install the lowest allowed version of
every declared dependency (runtime and test extras) into a fresh virtual environment and run the
test suite there.

    python scripts/check_lower_bounds.py            # the bounds as declared
    python scripts/check_lower_bounds.py --pin pydantic==2.8.2   # try another version of one

Prints the versions installed and the suite's result; exits with the suite's exit code. Takes a
few minutes (a fresh install plus the whole suite).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def canonical(name: str) -> str:
    """A distribution's name as pip compares it (PEP 503): ``flit_core`` and ``flit-core`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lowest_pins(requirements: list[str]) -> dict[str, str]:
    """``name -> name==LOWER`` for every requirement with a ``>=`` bound (the others are an error)."""
    pins: dict[str, str] = {}
    for req in requirements:
        m = REQ.match(req)
        if not m:
            raise SystemExit(f"cannot read requirement {req!r}")
        name, spec = m.group(1), m.group(3)
        low = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if not low:
            raise SystemExit(f"{req!r} has no lower bound (>=): every dependency needs one")
        pins[canonical(name)] = f"{name}=={low.group(1)}"
    return pins


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pin", action="append", default=[], help="override one pin (NAME==VERSION)")
    # no -q: pyproject.toml's addopts has one, and -qq would hide pytest's closing count line;
    # -rfEs: the reasons of the skips too (a test skipped for an old library checks nothing)
    ap.add_argument("--pytest-args", default="-n 2 -p no:cacheprovider -rfEs", help="arguments for pytest")
    args = ap.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    pins = lowest_pins(reqs)
    for p in args.pin:
        pins[canonical(p.split("==")[0])] = p
    with tempfile.TemporaryDirectory(prefix="lower-bounds-") as tmp:
        venv = Path(tmp) / "venv"
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(sorted(pins.values())) + "\n", encoding="utf-8")
        print("lowest allowed versions:", ", ".join(sorted(pins.values())), flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        r = subprocess.run([py, "-m", "pip", "install", "-q", "-c", str(constraints), f"{ROOT}[test]"])
        if r.returncode:
            print("install failed: these lower bounds cannot be installed together", flush=True)
            return r.returncode
        frozen = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
        installed = {canonical(line.split("==")[0]): line for line in frozen.splitlines() if "==" in line}
        print("installed:", ", ".join(installed.get(n, f"{n} MISSING") for n in sorted(pins)), flush=True)
        # the repository's tests, run by the fresh environment (its `reconciler` command and libraries)
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(Path.home())}
        # its own temporary folder: pytest prunes old ones under a shared base, another run's included
        r = subprocess.run([py, "-m", "pytest", *args.pytest_args.split(), f"--basetemp={tmp}/pytest"], cwd=ROOT, env=env)
        print(f"suite exit code with the lowest versions: {r.returncode}", flush=True)
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
