"""How numbers are shown: one rounding rule for tables, descriptions, check messages and metadata.

Imports no orchestrator: the gate rules (`dagster_evals.engine.gates`) and both orchestrators' surfaces use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DISPLAY_DIGITS = 4


def display_float(value: float, digits: int = DISPLAY_DIGITS) -> float:
    """`value` rounded to `digits` significant digits, as a float entry should be stored for the UI.

    Example:
        >>> display_float(2 / 3), display_float(1234.56789), display_float(0.000123456789)
        (0.6667, 1235.0, 0.0001235)
    """
    if value != value or value in (float("inf"), float("-inf")):
        return value
    return float(f"{value:.{digits}g}")


def format_number(value: float | int | None, *, signed: bool = False, usd: bool = False) -> str:
    """A number as every table and description prints it: `display_float`'s rounding, `–` for None,
    `+` on a signed diff, `$` on a cost in USD.

    Example:
        >>> format_number(2 / 3), format_number(-1 / 30, signed=True), format_number(0.00123456, usd=True)
        ('0.6667', '-0.03333', '$0.001235')
        >>> format_number(1.0), format_number(None), format_number(12)
        ('1', '–', '12')
    """
    if value is None:
        return "–"
    if isinstance(value, int):  # bools too
        text = str(value)
    else:
        text = f"{display_float(float(value)):.{DISPLAY_DIGITS}g}"
        if "e" in text:
            text = f"{display_float(float(value)):.{DISPLAY_DIGITS + 8}f}".rstrip("0").rstrip(".")
    if signed and not text.startswith("-"):
        text = "+" + text
    return f"${text}" if usd else text


def rounded_for_display(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata` with every plain float entry rounded by `display_float` (other entries unchanged).

    Example:
        >>> rounded_for_display({"score/em": 2 / 3, "rows": 3, "ok": True})
        {'score/em': 0.6667, 'rows': 3, 'ok': True}
    """
    return {key: display_float(v) if isinstance(v, float) else v for key, v in metadata.items()}
