"""The fee rule: floor for the platform, the rest for the creator, never a lost cent."""

from __future__ import annotations

import pytest

from backchannel.domain.fees import Split, split_reversal, split_sale


def test_the_platform_takes_the_floor_of_its_percentage_and_the_creator_the_rest() -> None:
    assert split_sale(1000, 20) == Split(1000, 200, 800)
    assert split_sale(999, 20) == Split(999, 199, 800)
    assert split_sale(1, 20) == Split(1, 0, 1)
    assert split_sale(333, 0) == Split(333, 0, 333)
    assert split_sale(333, 100) == Split(333, 333, 0)


@pytest.mark.parametrize("percent", [0, 1, 15, 20, 33, 99, 100])
def test_the_parts_always_add_up_to_what_the_fan_paid(percent: int) -> None:
    for amount in range(0, 2000, 7):
        split = split_sale(amount, percent)
        assert split.fee_cents + split.creator_cents == amount
        assert 0 <= split.fee_cents <= amount


def test_a_full_reversal_takes_back_exactly_the_original_parts() -> None:
    sale = split_sale(999, 20)
    assert split_reversal(sale, 999) == sale


def test_a_partial_reversal_splits_with_the_same_rule() -> None:
    sale = split_sale(1000, 20)
    assert split_reversal(sale, 500) == Split(500, 100, 400)
    assert split_reversal(sale, 5000) == sale


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        split_sale(-1, 20)
    with pytest.raises(ValueError):
        split_sale(100, 101)
