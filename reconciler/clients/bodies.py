"""Answer bodies of the HTTP transport (:mod:`reconciler.clients.http`), read bounded: in chunks
up to :data:`MAX_REPLY_BYTES` as received, and gzip or deflate undone here up to the same limit
(aiohttp's own decompression is off), so a decompression bomb is refused.
"""

from __future__ import annotations

import gzip
import io
import zlib

import aiohttp


MAX_REPLY_BYTES = 64 * 1024 * 1024
"""The largest answer body read, as received and once decoded (memory stays bounded whatever a
server sends, a decompression bomb included). The largest answers are whole lists (BestProxy's
accounts, about 300 bytes each; TcaplusDB's pages are capped at 256 KB by the vendor)."""


class _TooLarge(Exception):
    """Internal: an answer's body passed :data:`MAX_REPLY_BYTES`."""


def _decode(body: bytes, encoding: str | None) -> bytes:
    """The body without its content coding, never more than :data:`MAX_REPLY_BYTES` of it."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as fh:  # every member, as gzip.decompress reads
            out = fh.read(MAX_REPLY_BYTES + 1)
    elif enc == "deflate":
        try:
            out = _inflate(body, zlib.MAX_WBITS)
        except zlib.error:
            out = _inflate(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    else:
        raise ValueError(f"unsupported Content-Encoding {enc!r}")
    if len(out) > MAX_REPLY_BYTES:
        raise _TooLarge()
    return out


def _inflate(body: bytes, wbits: int) -> bytes:
    """``zlib.decompress(body, wbits)``, stopping one byte past the limit."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, MAX_REPLY_BYTES + 1)
    if len(out) > MAX_REPLY_BYTES:
        return out
    out += d.flush()
    if not d.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The answer's body as received, in chunks, never more than :data:`MAX_REPLY_BYTES`."""
    limit = MAX_REPLY_BYTES
    length = resp.content_length
    if length is not None and length > limit:
        raise _TooLarge()
    content = resp.content
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
