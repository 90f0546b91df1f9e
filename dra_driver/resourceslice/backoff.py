"""Exponential backoff: delays from ``first`` doubling up to ``cap`` seconds, back to ``first`` on reset."""

from __future__ import annotations


class Backoff:
    def __init__(self, first: float = 0.2, cap: float = 4.0) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff needs 0 < first <= cap (got first={first}, cap={cap})")
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        """The delay to wait now; the following one doubles (up to ``cap``)."""
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first
