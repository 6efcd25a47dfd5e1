"""Sizes as people write them ("64 B", "2 KiB", "1.5 MB") and as memprobe prints them."""
from __future__ import annotations

import pytest

from memprobe.errors import UsageError
from memprobe.units import format_bytes, parse_size


@pytest.mark.parametrize("text, expected", [
    ("64 B", 64), ("64", 64), (64, 64), ("2 KiB", 2048), ("2KiB", 2048), ("1.5 MB", 1_500_000),
    ("1 kb", 1000), ("3 MiB", 3 * 2**20), ("1 GiB", 2**30), ("0.5 GB", 5e8),
])
def test_parse_size_accepts_decimal_and_binary_units(text: object, expected: float) -> None:
    assert parse_size(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "lots", "12 parsecs", "1e3 B", "KiB", "--1 B"])
def test_parse_size_rejects_anything_else_with_an_example(text: str) -> None:
    with pytest.raises(UsageError, match=r"not a size: .*e\.g\. '64 B', '2 KiB', '1\.5 MB'"):
        parse_size(text)


@pytest.mark.parametrize("n, signed, text", [
    (0, False, "0 B"), (512, False, "512 B"), (2048, False, "2.0 KiB"),
    (int(15.5 * 2**20), False, "15.5 MiB"), (212, True, "+212 B"), (-4096, True, "-4.0 KiB"),
    (0, True, "±0 B"), (None, False, "-"), (3 * 2**40, False, "3072.0 GiB"),
])
def test_format_bytes(n: float | None, signed: bool, text: str) -> None:
    assert format_bytes(n, signed=signed) == text
