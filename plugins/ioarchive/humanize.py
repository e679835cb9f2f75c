"""Human-readable sizes: the one rule used by the README, the catalog and the reviewer summary.

Rule (docs/decisions.md, "Human sizes"): binary units (1 KB = 1024 bytes), labelled with the
historic archive's names ``B, KB, MB, GB, TB, PB``; the largest unit whose value is at least 1;
the value rounded half-to-even to ``decimals`` places, then trailing zeros and a trailing dot
dropped. The README uses ``decimals=2`` ("19.09 KB", "4.61 GB"), the catalog ``decimals=1``
("38 KB", "285.2 MB", "32.4 GB"). A value that rounds up to 1024 moves to the next unit
("1 MB", never "1024 KB").
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

UNITS: tuple[str, ...] = ("B", "KB", "MB", "GB", "TB", "PB")
BASE = 1024

README_DECIMALS = 2
"""README file lists: "19.09 KB", "4.61 GB"."""

CATALOG_DECIMALS = 1
"""Catalog lines: "38 KB", "285.2 MB", "32.4 GB"."""


def human_size(n: int, decimals: int = README_DECIMALS) -> str:
    """Format ``n`` bytes as e.g. ``"285.2 MB"`` (see the module docstring for the rule).

    Exact decimal arithmetic (not float) so that the same byte count always prints the same,
    whatever the platform, and so that tests can compute the expected text independently.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"human_size needs an int byte count, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"human_size needs a non-negative byte count, got {n}")
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    quantum = Decimal(1).scaleb(-decimals)
    value = Decimal(n)
    unit = 0
    while unit < len(UNITS) - 1 and value >= BASE:
        value /= BASE
        unit += 1
    rounded = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if rounded >= BASE and unit < len(UNITS) - 1:
        unit += 1
        rounded = (value / BASE).quantize(quantum, rounding=ROUND_HALF_EVEN)
    if unit == 0:
        return f"{n} B"
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {UNITS[unit]}"
