"""The search's working records: a candidate device, a request being allocated, a device chosen. Mutable.

Also the two ways a search ends early: ``Fatal`` (the scheduler aborts the attempt) and ``OutOfSteps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dra_driver.cel import Quantity
from dra_driver.structured.model import Device, DeviceClass, DeviceId, DeviceRequest, Slice
from dra_driver.structured.pools import Pool

Key = tuple[int, int, int]  # claim, request, subrequest


class Fatal(Exception):
    """The scheduler would abort the attempt with this error (``Failed``)."""


class OutOfSteps(Exception):
    """The search used up its step budget (the scheduler's Filter timeout)."""


@dataclass(frozen=True, eq=False)
class Candidate:
    id: DeviceId
    device: Device
    slice: Slice
    pool: Pool


@dataclass(eq=False)
class RequestData:
    request: DeviceRequest
    parent: str | None  # name of the parent request of a subrequest
    device_class: DeviceClass
    num_devices: int = 0
    all_devices: list[Candidate] | None = None
    selected_sub: int = 0

    @property
    def name(self) -> str:
        return f"{self.parent}/{self.request.name}" if self.parent else self.request.name

    @property
    def base(self) -> str:
        """The request name constraints see (the parent's, for a subrequest)."""
        return self.parent or self.request.name

    @property
    def sub(self) -> str:
        return self.request.name if self.parent else ""


@dataclass(eq=False)
class Chosen:
    request: str
    candidate: Candidate
    admin_access: bool = False
    share_id: str | None = None
    consumed: dict[str, Quantity] | None = None
