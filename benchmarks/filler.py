"""Deterministic filler text for benchmark rows: the same words for row `i` in every run."""

from __future__ import annotations

WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
)


def filler_text(i: int, row_bytes: int) -> str:
    """About `row_bytes` characters of words, varying with the row number `i`."""
    return " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(row_bytes // 6))
