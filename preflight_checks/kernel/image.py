"""The build string inside a kernel image file (`boot/vmlinuz-*`), read without booting it.

x86 bzImages carry it in the real-mode boot header: magic ``HdrS`` at 0x202 and, at 0x20E, a
16-bit pointer (counted from 0x200) to a NUL-terminated string such as
``6.1.0-26-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (...)``.
Other images (arm64 ``Image.gz``, a plain vmlinux, EFI zboot) are scanned for the
``Linux version `` banner, decompressing gzip, xz or zstd payloads found inside. Every read and
every decompression is bounded, so a huge, hostile or truncated file costs little.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from preflight.host import Host


HEADER_MAGIC = b"HdrS"
HEADER_MAGIC_AT = 0x202
VERSION_POINTER_AT = 0x20E
VERSION_BASE = 0x200
# The pointer is 16 bits, so the string starts below 0x200 + 0xFFFF; 512 bytes is far more than
# any kernel_version string needs.
HEADER_READ = VERSION_BASE + 0xFFFF + 512
SCAN_READ = 64 << 20  # compressed images are 8-40 MiB; a larger file is not a kernel we can scan
INFLATE_LIMIT = 96 << 20  # decompressed kernels are < 80 MiB; stop there regardless
INFLATE_PIECE = 4 << 20  # output of one decompress call: a bomb never allocates more at once
MAX_PAYLOADS = 8  # stray magic bytes inside the image are tried at most this often

BANNER = b"Linux version "
_MAGICS = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
# The banner ends in a newline (and NUL); a string cut short by a truncated stream does not.
_PRINTABLE = re.compile(rb"[\x20-\x7e]{8,512}(?=[\n\0])")
_PRINTABLE_ONLY = re.compile(rb"[\x20-\x7e]+")


def image_version(host: Host, rel: str, scan: bool = True) -> str | None:
    """The build string of the image at `rel`, as the kernel would print it after
    ``Linux version ``; None when the file is missing or no string is found. Without an x86
    header the image is scanned (and decompressed) only when `scan` is true: that costs up to
    about a second for a large compressed image."""
    head = host.read_bytes(rel, HEADER_READ)
    if not head:
        return None
    found = header_version(head)
    if found is not None or not scan:
        return found
    data = head if len(head) < HEADER_READ else host.read_bytes(rel, SCAN_READ)
    return scan_version(data) if data else None


def header_version(data: bytes) -> str | None:
    """The x86 boot header's kernel_version string, or None without a valid header."""
    if data[HEADER_MAGIC_AT : HEADER_MAGIC_AT + 4] != HEADER_MAGIC or len(data) < 0x210:
        return None
    (pointer,) = struct.unpack_from("<H", data, VERSION_POINTER_AT)
    if pointer == 0:
        return None
    start = VERSION_BASE + pointer
    end = data.find(b"\0", start, start + 512)
    if end == -1:
        return None
    raw = data[start:end]
    # A real kernel_version is printable ASCII; anything else (a pointer into the header
    # itself, at 0x20E, reads the pointer's own bytes) is not a version string.
    return _clean(raw) if _PRINTABLE_ONLY.fullmatch(raw) else None


def scan_version(data: bytes) -> str | None:
    """The `Linux version ...` banner in an uncompressed image, else in a compressed payload."""
    found = _banner(data)
    if found is not None:
        return found
    for offset, kind in _payloads(data):
        found = _banner_in_stream(data, offset, kind)
        if found is not None:
            return found
    return None


def _banner(data: bytes) -> str | None:
    at = data.find(BANNER)
    while at != -1:
        match = _PRINTABLE.match(data, at + len(BANNER))
        # The banner format string also appears as "Linux version %s (...)": skip it.
        if match is not None and b"%s" not in match.group(0)[:4]:
            return _clean(match.group(0))
        at = data.find(BANNER, at + 1)
    return None


def _payloads(data: bytes) -> Iterator[tuple[int, str]]:
    hits: list[tuple[int, str]] = []
    for magic, kind in _MAGICS:
        at = data.find(magic)
        count = 0
        while at != -1 and count < MAX_PAYLOADS:
            hits.append((at, kind))
            count += 1
            at = data.find(magic, at + 1)
    yield from sorted(hits)[:MAX_PAYLOADS]


def _banner_in_stream(data: bytes, offset: int, kind: str) -> str | None:
    """Decompress from `offset` chunk by chunk, looking for the banner as it goes."""
    try:
        decompressor = _decompressor(kind)
    except ImportError:
        return None
    if decompressor is None:
        return None
    produced = 0
    tail = b""
    view = memoryview(data)[offset:]
    position = 0
    chunk = 1 << 20
    feed = b""
    pending = False
    try:
        while produced < INFLATE_LIMIT:
            if not feed and not pending:
                if position >= len(view):
                    break
                feed = bytes(view[position : position + chunk])
                position += chunk
            # Output is bounded per call: 1 MiB of a gzip or xz bomb inflates to 1 GiB or more.
            piece = _inflate(decompressor, feed, INFLATE_PIECE)
            # zlib hands back the input it has not used yet; lzma and zstd keep it inside and
            # continue from b"". A full piece means more output may be waiting: drain it first.
            feed = getattr(decompressor, "unconsumed_tail", b"")
            pending = len(piece) >= INFLATE_PIECE
            if not piece:
                if getattr(decompressor, "eof", False):
                    break
                continue
            produced += len(piece)
            window = tail + piece
            found = _banner(window)
            # A banner cut at the window's end is completed by the next piece.
            if found is not None and window.find(BANNER) + len(BANNER) + 80 < len(window):
                return found
            tail = window[-1024:]
            if getattr(decompressor, "eof", False):
                break
        return _banner(tail)
    except Exception:
        # zlib.error, lzma.LZMAError, zstd's errors, EOFError, MemoryError: a payload that is
        # not what its magic bytes claim. The caller tries the next one.
        return None


def _inflate(decompressor: Any, data: bytes, limit: int) -> bytes:
    try:
        return bytes(decompressor.decompress(data, limit))
    except TypeError:  # zstandard's decompressobj takes no output limit
        return bytes(decompressor.decompress(data))


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        import zlib

        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "xz":
        import lzma

        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    if kind == "zstd":
        try:
            from compression import zstd  # Python 3.14+

            return zstd.ZstdDecompressor()
        except ImportError:
            try:
                import zstandard
            except ImportError:
                return None
            return zstandard.ZstdDecompressor().decompressobj()
    return None


def _clean(raw: bytes) -> str | None:
    text = raw.decode("ascii", errors="replace").strip()
    return text or None
