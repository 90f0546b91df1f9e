"""Start-up repair's GPU settings step run after the plugin serves (``DeferredSettings``): same resets as
``repair``, and a claim on a GPU waits until that GPU's settings are checked."""

from __future__ import annotations

import threading

from e2e.wait import until
from kubelet_plugin.hardware import DEFAULT_MODE, EXCLUSIVE_PROCESS
from kubelet_plugin.repair import DeferredSettings, repair
from tests.kubelet_plugin.conftest import Node, claim
from tests.kubelet_plugin.fakes import FakeHardware


class GatedReads(FakeHardware):
    """Interval reads wait for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def interval(self, gpu_uuid: str) -> str:
        assert self.gate.wait(30)
        return super().interval(gpu_uuid)


def test_repair_without_settings_leaves_them_for_later(node: Node) -> None:
    gpu1 = node.inventory.gpus[1]
    node.hardware.intervals[gpu1.uuid] = "Long"
    node.hardware.compute_modes[gpu1.index] = EXCLUSIVE_PROCESS
    report = repair(node.driver(), [], settings=False)
    assert report.settings_reset is None and "checked next" in str(report)
    assert node.hardware.intervals == {gpu1.uuid: "Long"}


def test_deferred_settings_reset_what_no_claim_holds_and_a_prepare_waits_for_its_gpu(node: Node) -> None:
    node.hardware = hardware = GatedReads()
    gpu0, gpu1 = node.inventory.gpus[0], node.inventory.gpus[1]
    hardware.intervals[gpu1.uuid] = "Long"  # its last claim went away while the plugin was down
    hardware.compute_modes[gpu1.index] = EXCLUSIVE_PROCESS
    driver = node.driver()
    repair(driver, [], settings=False)
    deferred = DeferredSettings(driver)
    deferred.start()
    ref = node.api.add(claim("u1", ["gpu-0"]))
    answers: list[object] = []
    prepare = threading.Thread(target=lambda: answers.append(driver.prepare([ref])))
    prepare.start()
    prepare.join(0.5)
    assert prepare.is_alive() and not answers  # GPU 0's lock is held until its settings are checked
    assert not any(c.startswith("apply") for c in hardware.calls)
    hardware.gate.set()
    prepare.join(30)
    assert answers and not answers[0][ref.uid].error  # type: ignore[index]
    deferred.join(30)
    assert deferred.reset == 2
    assert hardware.intervals == {} and hardware.compute_modes.get(gpu1.index, DEFAULT_MODE) == DEFAULT_MODE
    assert gpu0.uuid not in hardware.intervals


def test_a_failed_check_still_lets_go_of_every_gpu(node: Node) -> None:
    class Broken(FakeHardware):
        def interval(self, gpu_uuid: str) -> str:
            raise RuntimeError("not a hardware error")

    node.hardware = Broken()
    driver = node.driver()
    deferred = DeferredSettings(driver)
    deferred.start()
    deferred.join(30)
    assert deferred.reset is None
    ref = node.api.add(claim("u1", ["gpu-3"]))
    done = threading.Event()
    threading.Thread(target=lambda: (driver.prepare([ref]), done.set()), daemon=True).start()
    until(done.is_set, timeout=30, what="a prepare after a failed settings check")


def test_the_check_waits_for_go_and_a_cancelled_one_touches_nothing(node: Node) -> None:
    gpu1 = node.inventory.gpus[1]
    node.hardware.intervals[gpu1.uuid] = "Long"
    driver = node.driver()
    waiting = DeferredSettings(driver)
    waiting.start(within_s=30)
    ref = node.api.add(claim("u1", ["gpu-1"]))
    done = threading.Event()
    threading.Thread(target=lambda: (driver.prepare([ref]), done.set()), daemon=True).start()
    assert not done.wait(0.3) and node.hardware.intervals == {gpu1.uuid: "Long"}  # waits for go()
    waiting.cancel()
    until(done.is_set, timeout=30, what="a prepare once the check was cancelled")
    waiting.join(30)
    assert waiting.reset is None and node.hardware.intervals == {gpu1.uuid: "Long"}
