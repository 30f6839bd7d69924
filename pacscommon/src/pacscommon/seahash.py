"""The 64-bit SeaHash of a byte string, as the Rust ``seahash`` crate computes it.

ChRIS's receivers name a series folder with the first seven hex digits of the
SeaHash of its SeriesInstanceUID. PyPI's ``seahash`` ships wheels only for some
CPython versions, so this module computes it in Python; the tests check it
against that package where it installs.
"""

_MASK = (1 << 64) - 1
_PRIME = 0x6EED0E9DA4D94A4F
_SEEDS = (
    0x16F11FE89B0D677C,
    0xB480A793D8E6C86C,
    0x6FE2E5AAF078EBC9,
    0x14F994A4C5259381,
)


def _diffuse(x: int) -> int:
    """Mix the bits of one 64-bit lane."""
    x = (x * _PRIME) & _MASK
    x ^= (x >> 32) >> (x >> 60)
    return (x * _PRIME) & _MASK


def seahash(data: bytes) -> int:
    """Return the SeaHash of ``data`` as an unsigned 64-bit integer."""
    lanes = list(_SEEDS)
    # Each little-endian 8-byte word, the last one zero-extended, goes to the
    # lanes in turn.
    for n, start in enumerate(range(0, len(data), 8)):
        word = int.from_bytes(data[start : start + 8], "little")
        lanes[n % 4] = _diffuse(lanes[n % 4] ^ word)
    a, b, c, d = lanes
    return _diffuse(a ^ b ^ c ^ d ^ len(data))


def seahash_hex(data: bytes) -> str:
    """Return the SeaHash as lower-case hex without padding, as Rust's ``{:x}``."""
    return format(seahash(data), "x")
