"""Backoff doubles up to its cap and starts over after a success."""

from __future__ import annotations

import pytest

from dra_driver.resourceslice.backoff import Backoff


def test_delays_double_up_to_the_cap_and_reset_starts_over() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


@pytest.mark.parametrize(("first", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_a_backoff_that_cannot_back_off_is_refused(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < first <= cap"):
        Backoff(first, cap)
