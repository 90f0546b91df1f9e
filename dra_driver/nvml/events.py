"""NVML's event API: XID critical errors and ECC errors as they happen, on a thread of their own.

One event set for all GPUs; each GPU is registered for the event types it supports among ``WATCHED``
(``nvmlDeviceGetSupportedEventTypes``). ``nvmlEventSetWait_v2`` blocks at most ``WAIT_MS`` so the thread
notices ``stop`` and GPUs that appear later. A GPU or driver without event support is logged once and left
out; its health still comes from the periodic re-scan.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pynvml

from dra_driver.nvml.session import Nvml

log = logging.getLogger(__name__)

XID_CRITICAL = pynvml.nvmlEventTypeXidCriticalError
DOUBLE_BIT_ECC = pynvml.nvmlEventTypeDoubleBitEccError
SINGLE_BIT_ECC = pynvml.nvmlEventTypeSingleBitEccError
WATCHED = XID_CRITICAL | DOUBLE_BIT_ECC | SINGLE_BIT_ECC
WAIT_MS = 1000


@dataclass(frozen=True)
class GpuEvent:
    gpu_uuid: str
    kind: str  # "xid" | "ecc-double-bit" | "ecc-single-bit"
    xid: int = 0


def _kind(event_type: int) -> str:
    if event_type & XID_CRITICAL:
        return "xid"
    if event_type & DOUBLE_BIT_ECC:
        return "ecc-double-bit"
    return "ecc-single-bit"


class EventWatcher:
    """Calls ``on_event`` for every event of the GPUs ``uuids()`` names, until ``stop``."""

    def __init__(
        self, nvml: Nvml, uuids: Callable[[], Iterable[tuple[int, str]]], on_event: Callable[[GpuEvent], None]
    ):
        self._nvml = nvml
        self._uuids = uuids
        self._on_event = on_event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml-events", daemon=True)
        self._registered: set[str] = set()  # GPUs registered (or found without event support)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(WAIT_MS / 1000 * 3)

    def _run(self) -> None:
        try:
            event_set = pynvml.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            log.warning("NVML events are not available (%s): GPU health comes from the re-scan only", exc)
            return
        try:
            while not self._stop.is_set():
                self._register(event_set)
                try:
                    data = pynvml.nvmlEventSetWait_v2(event_set, WAIT_MS)
                except pynvml.NVMLError_Timeout:
                    continue
                except pynvml.NVMLError as exc:
                    log.warning("waiting for NVML events failed (%s); retrying", exc)
                    self._stop.wait(WAIT_MS / 1000)
                    continue
                self._deliver(data)
        finally:
            pynvml.nvmlEventSetFree(event_set)

    def _register(self, event_set: object) -> None:
        for index, uuid in self._uuids():
            if uuid in self._registered:
                continue
            try:
                handle = self._nvml.device(index)
                supported = pynvml.nvmlDeviceGetSupportedEventTypes(handle) & WATCHED
                if supported:
                    pynvml.nvmlDeviceRegisterEvents(handle, supported, event_set)
            except pynvml.NVMLError as exc:
                log.info("GPU %d (%s): no NVML events (%s)", index, uuid, exc)
            except Exception as exc:  # a lost GPU: the session's own errors
                log.info("GPU %d (%s): cannot register for NVML events (%s)", index, uuid, exc)
                continue
            self._registered.add(uuid)

    def _deliver(self, data: object) -> None:
        try:
            uuid = pynvml.nvmlDeviceGetUUID(data.device)  # type: ignore[attr-defined]
        except pynvml.NVMLError:
            uuid = ""
        uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
        event = GpuEvent(uuid, _kind(int(data.eventType)), int(data.eventData))  # type: ignore[attr-defined]
        log.warning("NVML event on GPU %s: %s %s", uuid or "?", event.kind, event.xid or "")
        try:
            self._on_event(event)
        except Exception:
            log.exception("handling the NVML event %s failed", event)
