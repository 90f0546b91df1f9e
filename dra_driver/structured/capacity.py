"""Consumable capacity (KEP-5075): does a request fit a device, and what does it consume? Pure.

Port of ``consumable_capacity.go`` ("incubating", with DRAFractionalCapacityRange on as in 1.37). For
every capacity of the device the consumed amount is the request, rounded up to the policy's valid range
step or to the next valid value, or, without a request, the policy default or else the whole capacity.
The amount must satisfy the policy and, added to what allocated claims and the current search already
consume, stay within the capacity. A request naming a capacity the device lacks skips the device.

Range steps use milli-unit arithmetic when min, max and step are all exact in milli-units (else whole
units, rounded up like ``Quantity.Value()``). A request that cannot be represented that way, or a negative
amount, raises ``CapacityError``: the scheduler aborts the attempt rather than trying other devices.
"""

from __future__ import annotations

from collections.abc import Mapping

from dra_driver.cel import Quantity
from dra_driver.cel.quantity import NANO
from dra_driver.structured.model import Capacity, RequestPolicy

Amounts = Mapping[str, Quantity]
_INT64_MAX = 2**63 - 1
_MILLI = NANO // 1000


class CapacityError(Exception):
    """A capacity request the scheduler refuses outright (``str()`` is its message)."""


def _value(q: Quantity) -> int:
    """``Quantity.Value()``: whole units, rounded up."""
    return -(-q.nanos // NANO)


def _milli(q: Quantity) -> int | None:
    """``safeMilliValue``: the value in milli-units when that is exact and fits int64."""
    if q.nanos % _MILLI:
        return None
    milli = q.nanos // _MILLI
    return milli if -(2**63) <= milli <= _INT64_MAX else None


def _use_milli(policy: RequestPolicy) -> bool:
    for q in (policy.range_min, policy.range_max, policy.range_step):
        if q is not None and _milli(q) is None:
            return False
    step = _milli(policy.range_step) if policy.range_step is not None else None
    return step is None or step >= 1


def consumed_amount(requested: Quantity | None, capacity: Capacity) -> Quantity:
    policy = capacity.policy
    if requested is None:
        return policy.default if policy is not None and policy.default is not None else capacity.value
    if policy is None:
        return requested
    if policy.has_range and policy.range_min is not None:
        return _round_up_range(requested, policy)
    if policy.valid_values:
        return next((v for v in policy.valid_values if requested <= v), requested)
    return requested


def _round_up_range(requested: Quantity, policy: RequestPolicy) -> Quantity:
    assert policy.range_min is not None
    if requested < policy.range_min:
        return policy.range_min
    if policy.range_step is None:
        return requested
    if _use_milli(policy):
        req, step, low = _milli(requested), _milli(policy.range_step), _milli(policy.range_min)
        if req is None:
            raise CapacityError(f"request {requested} is not a representable milli value")
        assert step is not None and low is not None
        n = _steps(req - low, step)
        if n > (_INT64_MAX - low) // step:
            raise CapacityError(f"rounding request {requested} up to the next step passes the milli-value range")
        return Quantity((low + step * n) * _MILLI)
    if requested.nanos > _INT64_MAX * NANO:
        raise CapacityError(f"request {requested} exceeds MaxInt64")
    step, low = _value(policy.range_step), _value(policy.range_min)
    n = _steps(_value(requested) - low, step)
    if low >= 0 and n > (_INT64_MAX - low) // step:
        raise CapacityError(f"rounding request {requested} up to the next step passes MaxInt64")
    return Quantity.from_int(low + step * n)


def _steps(added: int, step: int) -> int:
    """Steps of ``step`` that cover ``added`` (both non-negative here: the request is at least the minimum)."""
    return added // step + (1 if added % step else 0)


def violates_policy(amount: Quantity, policy: RequestPolicy | None) -> bool:
    if policy is None or (policy.default is not None and amount == policy.default):
        return False
    if policy.has_range:
        if policy.range_max is not None and policy.range_max < amount:
            return True
        if policy.range_step is None:
            return False
        if _use_milli(policy):
            req, step = _milli(amount), _milli(policy.range_step)
            low = _milli(policy.range_min) if policy.range_min is not None else 0
            if req is None:
                return True
            assert step is not None and low is not None
            return (req - low) % step != 0
        low_value = _value(policy.range_min) if policy.range_min is not None else 0
        return (_value(amount) - low_value) % _value(policy.range_step) != 0
    if policy.valid_values:
        return amount not in policy.valid_values
    return False


def consumed_capacity(requests: Amounts | None, capacities: Mapping[str, Capacity]) -> dict[str, Quantity]:
    """What one allocation of a device consumes (``GetConsumedCapacityFromRequest``)."""
    out = {}
    for name, cap in capacities.items():
        try:
            out[name] = consumed_amount((requests or {}).get(name), cap)
        except CapacityError as e:
            raise CapacityError(f'capacity "{name}": {e}') from e
    return out


def capacity_shortfall(
    requests: Amounts | None, capacities: Mapping[str, Capacity], allocated: Amounts, allocating: Amounts
) -> str | None:
    """None when the request fits (``CmpRequestOverCapacity``), else which capacity does not.

    ``allocated``: consumed by already-allocated claims; ``allocating``: by this search so far.
    Raises CapacityError where the scheduler aborts.
    """
    for name in requests or {}:
        if name not in capacities:
            return f"capacity {name} is not defined by the device"
    amounts = consumed_capacity(requests, capacities)
    for name, amount in amounts.items():
        if amount.nanos < 0:
            raise CapacityError(f'capacity "{name}": capacity value is negative')
    for name, cap in capacities.items():
        amount = amounts[name]
        if violates_policy(amount, cap.policy):
            return f"capacity {name}: {amount} is not allowed by the request policy"
        total = amount + allocated.get(name, Quantity(0)) + allocating.get(name, Quantity(0))
        if cap.value < total:
            return f"capacity {name}: {total} needed, {cap.value} available"
    return None
