"""Stripe-style ids that encode (account, index) so lookups and cursors are O(1).

Layout after the prefix (24 base62 chars, alphabet in ASCII order so that string order
equals numeric order for the index part):
  chars 0..7   object index (8 chars, 62**8 > 2e14)
  chars 8..9   account number (0 = platform)
  chars 10..23 pseudo-random tail derived from (seed, account, stream, index) — validates
               the id, so an id of stream A is not accepted for stream B.
"""

from __future__ import annotations

import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_IDX = {c: i for i, c in enumerate(ALPHABET)}
_PAIR = [a + b for a in ALPHABET for b in ALPHABET]  # 3844 entries
_M64 = (1 << 64) - 1
IDX_CHARS = 8
MAX_INDEX = 62**IDX_CHARS


def mix(x: int) -> int:
    """splitmix64 finalizer: a fast, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def name_key(name: str) -> int:
    return zlib.crc32(name.encode())


def enc_fixed(n: int, width: int) -> str:
    out = []
    for _ in range(width // 2):
        n, r = divmod(n, 3844)
        out.append(_PAIR[r])
    if width % 2:
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def dec(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + _IDX[c]
    return n


def _quads():
    out, x = [], 0x243F6A8885A308D3
    for _ in range(65536):
        x = mix(x)
        out.append(_PAIR[x % 3844] + _PAIR[(x >> 16) % 3844])
    return out


_QUAD = _quads()  # 65536 pseudo-random 4-char strings (fixed)
_P2 = 3844 * 3844


def make_id(prefix: str, salt: int, account: int, index: int) -> str:
    """salt = hash of (seed, stream); deterministic."""
    h = mix(salt ^ (account << 48) ^ index)
    hi, lo = divmod(index, _P2)
    return (prefix + _PAIR[hi // 3844] + _PAIR[hi % 3844] + _PAIR[lo // 3844] + _PAIR[lo % 3844] + _PAIR[account]
            + _QUAD[h & 0xFFFF] + _QUAD[(h >> 16) & 0xFFFF] + _QUAD[(h >> 32) & 0xFFFF] + _PAIR[(h >> 48) % 3844])


def parse_id(prefix: str, salt: int, oid: str) -> tuple[int, int] | None:
    """(account, index) if `oid` is a valid id of this stream, else None."""
    if not oid.startswith(prefix):
        return None
    body = oid[len(prefix):]
    if len(body) != 24:
        return None
    try:
        index = dec(body[:IDX_CHARS])
        account = dec(body[IDX_CHARS:IDX_CHARS + 2])
    except KeyError:
        return None
    if make_id(prefix, salt, account, index) != oid:
        return None
    return account, index


def random_token(h: int, n: int) -> str:
    out = []
    while len(out) * 2 < n:
        h = mix(h)
        out.append(_PAIR[h % 3844])
    return "".join(out)[:n]
