"""Human sizes: the historic strings come out exactly, and the rule holds at unit edges."""

from __future__ import annotations

import pytest
from ioarchive.humanize import human_size


@pytest.mark.parametrize(
    ("n", "decimals", "expected"),
    [
        (38 * 1024, 1, "38 KB"),  # catalog, ".0" dropped
        (round(285.2 * 1024**2), 1, "285.2 MB"),
        (round(32.4 * 1024**3), 1, "32.4 GB"),
        (round(19.09 * 1024), 2, "19.09 KB"),  # README
        (round(4.61 * 1024**3), 2, "4.61 GB"),
        (round(2.3 * 1024**4), 1, "2.3 TB"),
        (0, 2, "0 B"),
        (1023, 2, "1023 B"),
        (1024, 2, "1 KB"),
        (1536, 2, "1.5 KB"),  # trailing zero trimmed: not "1.50 KB"
        (1024**2 - 1, 2, "1 MB"),  # rounds up to 1024 KB -> next unit
        (1024**2 - 1, 0, "1 MB"),
        (1024**6, 1, "1024 PB"),  # no unit beyond PB
        (2 * 1024**3, 2, "2 GB"),
    ],
)
def test_human_size(n: int, decimals: int, expected: str) -> None:
    assert human_size(n, decimals) == expected


def test_half_even_rounding_is_exact_not_float() -> None:
    # 1.25 KB and 1.35 KB are exact in binary fractions of 1024: half-even gives 1.2 and 1.4.
    assert human_size(1280, 1) == "1.2 KB"
    assert human_size(int(1.375 * 1024), 2) == "1.38 KB"


@pytest.mark.parametrize("bad", [-1, 1.5, True, "12"])
def test_rejects_non_counts(bad) -> None:
    with pytest.raises((TypeError, ValueError)):
        human_size(bad, 1)
