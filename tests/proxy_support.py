"""A small forwarding proxy on loopback for the proxy tests (issue 24 item 2).

It speaks the two ways an HTTP client uses a proxy:

- plain ``http://`` targets: requests in absolute form (``GET http://host:port/path HTTP/1.1``),
  each forwarded in origin form on a connection to the target, the answers piped back as they come;
- ``https://`` targets: ``CONNECT host:port``, answered ``200`` and then a tunnel. With ``tls`` set
  (an ``ssl.SSLContext`` for the server side) it ends the client's TLS itself, with a certificate
  the client is told to trust (``SSL_CERT_FILE``), and forwards the plain bytes: so emulators that
  speak plain HTTP on loopback can stand behind ``https://`` names.

Targets are mapped by ``routes`` (``"host:port"`` -> a loopback port); a target that is not mapped
is refused (403) and recorded, so nothing ever leaves loopback. Everything is bounded: at most
``max_connections`` connections are served, each read waits at most ``idle`` seconds.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


class LoopbackProxy:
    def __init__(
        self, routes: dict[str, int], *, tls: ssl.SSLContext | None = None, max_connections: int = 2_000, idle: float = 30.0
    ) -> None:
        self.routes = routes
        self.tls = tls
        self.max_connections = max_connections
        self.idle = idle
        self.connections = 0  # client connections accepted
        self.targets: Counter[str] = Counter()  # "METHOD host:port" per request line seen (CONNECT once per tunnel)
        self.refused: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.max_connections:
            writer.close()
            return
        self.connections += 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        pipe: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    head = await self._read_head(reader)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                line, _, rest = head.partition(b"\r\n")
                method, target, version = line.decode("latin-1").split(" ", 2)
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                url = urlsplit(target)
                authority = f"{url.hostname}:{url.port or 80}"
                self.targets[f"{method} {authority}"] += 1
                port = self.routes.get(authority)
                if url.scheme != "http" or port is None:
                    self.refused.append(f"{method} {authority}")
                    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    await writer.drain()
                    return
                length = 0
                for header in rest.split(b"\r\n"):
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await asyncio.wait_for(reader.readexactly(length), self.idle) if length else b""
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", port)
                    pipe = asyncio.create_task(self._pipe(upstream[0], writer))
                origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
                upstream[1].write(f"{method} {origin} {version}\r\n".encode("latin-1") + rest + body)
                await upstream[1].drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            return
        finally:
            if upstream is not None:
                upstream[1].close()
            if pipe is not None:
                pipe.cancel()
            writer.close()

    async def _tunnel(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.targets[f"CONNECT {target}"] += 1
        port = self.routes.get(target)
        if port is None:
            self.refused.append(f"CONNECT {target}")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        if self.tls is not None:  # the client's TLS ends here; plain bytes go on to the emulator
            await writer.start_tls(self.tls)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        back = asyncio.create_task(self._pipe(up_reader, writer))
        try:
            await self._pipe(reader, up_writer)
        finally:
            back.cancel()
            up_writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await asyncio.wait_for(src.read(65536), self.idle):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            dst.close()
