"""The README's main job: `reconciler apply --sandbox --auto-approve` on the shipped manifests
plans and applies them, and a second run finds nothing to change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from tests.support import nothing_to_apply

ROOT = Path(__file__).resolve().parents[1]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("reconciler")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_quickstart_applies_the_shipped_manifests_and_converges(tmp_path: Path) -> None:
    for folder in ("manifests", "tables", "data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    first = _run(tmp_path, "apply", "--sandbox", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Apply:" in first.stdout and " 0 failed" in first.stdout
    assert (tmp_path / ".reconciler" / "sandbox").is_dir()
    second = _run(tmp_path, "plan", "--sandbox", "--detailed-exitcode")
    assert second.returncode == 0, second.stdout + second.stderr
    assert nothing_to_apply(second.stdout), second.stdout
    for kind in ("ProxyAccount", "IpAllowlist", "TcaplusRecords", "FreeSpinEvent"):
        assert kind in first.stdout


def test_sandbox_serve_writes_a_working_config(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("reconciler")
    proc = subprocess.Popen(
        [
            str(exe),
            "sandbox",
            "serve",
            "--state",
            str(tmp_path / "state"),
            "--config-out",
            str(tmp_path / "reconciler.yaml"),
            "--config",
            str(tmp_path / "none.yaml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving"):
                break
        assert any(line.startswith("bestproxy") and "http://127.0.0.1:" in line for line in lines), lines
        assert proc.stderr is not None  # an explicit --config that names no file is said, never silent
        assert proc.stderr.readline().startswith(f"note: --config {tmp_path / 'none.yaml'}: no such file")
        shutil.copytree(ROOT / "manifests" / "bestproxy", tmp_path / "manifests" / "bestproxy")
        shutil.copytree(ROOT / "manifests" / "secrets", tmp_path / "manifests" / "secrets")
        res = _run(tmp_path, "apply", "manifests/bestproxy", "--auto-approve")
        assert res.returncode == 0, res.stdout + res.stderr
        assert _run(tmp_path, "plan", "manifests/bestproxy", "--detailed-exitcode").returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
