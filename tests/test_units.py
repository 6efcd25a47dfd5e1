"""Sizes as people write them ("64 B", "2 KiB", "1.5 MB"), and every figure as memprobe prints it:
sizes, bytes per request with their error bar, MiB columns, changes, percentages, source paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from memprobe.errors import UsageError
from memprobe.units import (
    format_bytes,
    format_change_short,
    format_kib,
    format_mib,
    format_pct,
    format_rate,
    parse_size,
    short_path,
)


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


class _Rate(float):
    """A value that carries its error, as a hunt's Rate does."""

    error = 0.44


@pytest.mark.parametrize("value, error, text", [
    (36.04, 0.44, "+36.0 ± 0.4"), (-2.0, 1.25, "-2.0 ± 1.2"), (0.0, 0.0, "+0.0 ± 0.0"),
    (None, 1.0, "-"), (12.0, None, "+12.0"), (_Rate(36.04), None, "+36.0 ± 0.4"),
])
def test_format_rate_is_bytes_per_request_with_its_error_bar(value: float | None, error: float | None,
                                                             text: str) -> None:
    assert format_rate(value, error) == text


@pytest.mark.parametrize("n, signed, text", [
    (int(15.5 * 2**20), False, "15.5"), (2**20 // 8, True, "+0.12"), (-(2**20), True, "-1.00"),
    (0, False, "0.0"), (None, False, "-"), (None, True, "-"),
])
def test_format_mib_is_a_column_of_mib_without_the_unit(n: float | None, signed: bool, text: str) -> None:
    assert format_mib(n, signed=signed) == text


@pytest.mark.parametrize("n, signed, text", [(12 * 1024, False, "12"), (12 * 1024, True, "+12"),
                                             (-3 * 1024, True, "-3"), (0, True, "+0")])
def test_format_kib_is_whole_kib_without_the_unit(n: float, signed: bool, text: str) -> None:
    assert format_kib(n, signed=signed) == text


@pytest.mark.parametrize("n, text", [(int(1.2 * 2**20), "+1.2M"), (-(2**21), "-2.0M"), (12 * 1024, "+12K"),
                                     (-512, "-0K"), (0, "+0K")])
def test_format_change_short_fits_a_narrow_column(n: float, text: str) -> None:
    assert format_change_short(n) == text


@pytest.mark.parametrize("p, text", [(5.0, "+5.0 %"), (-0.04, "-0.0 %"), (None, "-")])
def test_format_pct(p: float | None, text: str) -> None:
    assert format_pct(p) == text


def test_short_path_starts_at_the_package_or_the_working_directory(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert short_path(os.path.join("/venv/lib/python3.11/site-packages", "werkzeug", "app.py")) == \
        os.path.join("werkzeug", "app.py")
    assert short_path(str(tmp_path / "app" / "views.py")) == os.path.join("app", "views.py")
    assert short_path("/usr/lib/python3.11/json/decoder.py") == os.path.join("json", "decoder.py")
    assert short_path("/srv/elsewhere/views.py") == "/srv/elsewhere/views.py"
