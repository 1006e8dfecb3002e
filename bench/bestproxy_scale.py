"""Benchmark: plan + apply + re-plan of N proxy accounts and an M-address allowlist against the
BestProxy emulator on loopback. Prints requests made, wall time, CPU time and peak memory.

    python bench/bestproxy_scale.py --accounts 2000 --ips 5000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import httpx
import pyotp
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import BestProxyEmulator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--ips", type=int, default=2000)
    args = ap.parse_args()
    key, totp = "BenchOnlyKey" * 2, pyotp.random_base32()
    with tempfile.TemporaryDirectory() as tmp, EmulatorServer(BestProxyEmulator(None, app_key=key, totp_secret=totp)) as srv:
        root = Path(tmp)
        (root / "key").write_text(key)
        (root / "totp").write_text(totp)
        (root / "pw").write_text("BenchPass123")
        (root / "reconciler.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: Config\nproviders:\n  bestproxy:\n    base_url: {srv.url}\n"
            "    app_key: file:key\n    ip_delete_verification: {type: totp, totp_secret: file:totp}\n"
        )
        docs = [
            f"apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {{name: b{i}}}\n"
            f"spec: {{username: bench{i}, password: file:pw, productType: 9, remark: r{i % 3}}}\n"
            for i in range(args.accounts)
        ]
        ips = "\n".join(f"    - 10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(args.ips))
        docs.append(
            f"apiVersion: reconciler/v1\nkind: IpAllowlist\nmetadata: {{name: a}}\nspec:\n  productType: 14\n  exclusive: true\n  entries:\n{ips}\n"
        )
        (root / "m.yaml").write_text("---\n".join(docs))
        runner = CliRunner()
        for step, argv in (
            ("plan", ["plan", "m.yaml"]),
            ("apply", ["apply", "m.yaml", "--auto-approve"]),
            ("re-plan", ["plan", "m.yaml"]),
        ):
            httpx.post(srv.url + "/_sandbox/stats/reset")
            import os

            cwd = os.getcwd()
            os.chdir(root)
            cpu0, t0 = time.process_time(), time.perf_counter()
            res = runner.invoke(cli, [*argv, "--config", "reconciler.yaml"])
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            os.chdir(cwd)
            stats = httpx.get(srv.url + "/_sandbox/stats").json()
            print(
                f"{step:8} exit={res.exit_code} requests={sum(stats.values()):5d} wall={wall:6.2f}s cpu={cpu:6.2f}s "
                f"(emulator included) {res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ''}"
            )
            for k, v in sorted(stats.items()):
                print(f"          {v:5d} {k}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
