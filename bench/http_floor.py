"""The client's CPU per request against the floor of CPython on this machine.

Reads the same TcaplusDB records (GetRecord, answered "no such record") from ``reconciler sandbox
serve`` (its own process, so its CPU is not counted) three ways, with 1 and 8 threads:

- **product**: ``TcaplusClient.get`` from threads — the product's whole request path (query
  encoding, retry policy, the keep-alive transport of ``reconciler/clients/http.py`` on aiohttp,
  reached through its synchronous facade: the transport's own event loop in one background thread,
  the answer's JSON and error mapping);
- **product loop**: ``TcaplusClient.aget`` on one event loop with as many requests in flight as
  the row has threads (``RunContext.amap``) — how TcaplusRecords reads and writes;
- **http.client**: the standard library's client on kept-alive connections, nothing else;
- **raw socket**: a request written by hand and the answer cut at ``Content-Length`` — no HTTP
  library at all, the least Python can spend per request (not a client anyone should ship).

It prints, per way and thread count, the wall time, the process CPU (user + system) in total and
per request, and the emulator process's CPU per request. Nothing is asserted; compare the rows.

    python bench/http_floor.py                      # 4,000 requests per row, 5 ms latency
    python bench/http_floor.py --requests 200 --latency-ms 0      # seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import resource
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import Fleet, Sandbox, write_fleet  # noqa: E402
from reconciler.vendors.tcaplus.client import TcaplusClient  # noqa: E402
from reconciler.vendors.tcaplus.wire import _query  # noqa: E402


def product(cfg: dict[str, Any], password: str, threads: int) -> Callable[[dict[str, Any]], Any]:
    client = TcaplusClient(
        cfg["base_url"], app_id=cfg["app_id"], zone_id=cfg["zone_id"], password=password, max_connections=threads
    )
    return lambda keys: client.get("fleet_flat", keys)


def product_loop(cfg: dict[str, Any], password: str, threads: int) -> Callable[[list[dict[str, Any]]], Any]:
    """The product's event-loop path: ``TcaplusClient.aget`` for every key, ``threads`` in flight."""
    from reconciler.kinds.base import RunContext

    client = TcaplusClient(
        cfg["base_url"], app_id=cfg["app_id"], zone_id=cfg["zone_id"], password=password, max_connections=threads
    )

    def run(keys: list[dict[str, Any]]) -> Any:
        async def one(k: dict[str, Any]) -> Any:
            return await client.aget("fleet_flat", k)

        return client.run(lambda: RunContext.amap(one, keys, concurrency=threads))

    return run


def _target(cfg: dict[str, Any], headers: dict[str, str]) -> tuple[str, int, str, dict[str, str]]:
    host, port = cfg["base_url"].split("//", 1)[1].rstrip("/").split(":")
    path = f"/ver1.0/apps/{cfg['app_id']}/zones/{cfg['zone_id']}/tables/fleet_flat/records"
    return host, int(port), path, {**headers, "x-tcaplus-target": "Tcaplus.GetRecord"}


def stdlib(cfg: dict[str, Any], headers: dict[str, str], threads: int) -> Callable[[dict[str, Any]], Any]:
    host, port, path, hdrs = _target(cfg, headers)
    idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
    for _ in range(threads):
        idle.put(http.client.HTTPConnection(host, port, timeout=30))

    def get(keys: dict[str, Any]) -> Any:
        conn = idle.get()
        try:
            conn.request("GET", f"{path}?{_query(keys=keys)}", headers=hdrs)
            return json.loads(conn.getresponse().read())
        finally:
            idle.put(conn)

    return get


def raw(cfg: dict[str, Any], headers: dict[str, str], threads: int) -> Callable[[dict[str, Any]], Any]:
    host, port, path, hdrs = _target(cfg, headers)
    idle: queue.LifoQueue[socket.socket] = queue.LifoQueue()
    for _ in range(threads):
        idle.put(socket.create_connection((host, port), timeout=30))
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())

    def get(keys: dict[str, Any]) -> Any:
        sock = idle.get()
        try:
            sock.sendall(f"GET {path}?{_query(keys=keys)} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += sock.recv(65536)
            top, _, body = buf.partition(b"\r\n\r\n")
            length = int(top.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += sock.recv(65536)
            return json.loads(body)
        finally:
            idle.put(sock)

    return get


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    fn: Callable[[Any], Any], n: int, threads: int, server_pid: int, *, batch: bool = False
) -> tuple[float, float, float]:
    keys = [{"shard": i % 7, "key": f"k{i}"} for i in range(n)]
    fn([keys[0]] if batch else keys[0])  # connect (and import) outside the measurement
    e0 = proc_cpu(server_pid)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if batch:  # one call for all keys (the event loop keeps ``threads`` in flight)
        fn(keys)
    elif threads == 1:
        for k in keys:
            fn(k)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, keys))
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), proc_cpu(server_pid) - e0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=4_000, help="requests per row (bounded: at most 50,000)")
    ap.add_argument("--latency-ms", type=float, default=5.0, help="latency the emulator adds to every request")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    n = max(10, min(args.requests, 50_000))
    ws = Path(tempfile.mkdtemp(prefix="http-floor-"))
    write_fleet(ws, Fleet.at(0.005, region_size=10, players=5))
    sbx = Sandbox(ws, args.latency_ms, 60.0)
    try:
        cfg = sbx.config["tcaplus"]
        password = sbx.secret(cfg["password"])
        headers = dict(TcaplusClient(cfg["base_url"], app_id=cfg["app_id"], zone_id=cfg["zone_id"], password=password)._headers)
        print(
            f"http floor: {n:,} GetRecord requests per row, latency {args.latency_ms:g} ms, "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(f"{'way':14} {'threads':>7} {'wall s':>8} {'cpu s':>7} {'ms/req':>7} {'emulator ms/req':>15}")
        for threads in args.threads:
            for name, make in (
                ("product", lambda t: product(cfg, password, t)),
                ("product loop", lambda t: product_loop(cfg, password, t)),
                ("http.client", lambda t: stdlib(cfg, headers, t)),
                ("raw socket", lambda t: raw(cfg, headers, t)),
            ):
                wall, cpu, emu = measure(make(threads), n, threads, sbx.proc.pid, batch=name == "product loop")
                print(f"{name:14} {threads:>7} {wall:8.2f} {cpu:7.2f} {cpu / n * 1000:7.3f} {emu / n * 1000:15.3f}", flush=True)
    finally:
        sbx.stop()


if __name__ == "__main__":
    main()
