"""Termination: SIGTERM ends the main thread's wait even when the kernel hands the signal to another thread."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from dra_driver import termination
from dra_driver.termination import Termination
from e2e.wait import until


def _signal_from_another_thread(signum: int = signal.SIGTERM) -> threading.Thread:
    """Send ``signum`` to a thread other than the main one: its C-level handler runs there, not in main."""

    main = threading.main_thread().native_id

    def send() -> None:
        until(lambda: _asleep(main), "the main thread asleep in its wait", timeout=30, interval=0.01)
        signal.pthread_kill(threading.get_ident(), signum)

    sender = threading.Thread(target=send)
    sender.start()
    return sender


def _asleep(tid: int | None) -> bool:
    """Is thread ``tid`` of this process blocked (state S in /proc)?"""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "S"


def test_a_plain_event_wait_misses_a_signal_another_thread_took() -> None:
    """The failure mode itself, so that the next test means something: the handler runs only once main wakes."""
    event = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: event.set())
    try:
        sender = _signal_from_another_thread()
        assert not event.wait(timeout=2.0)  # main slept through it
        sender.join()
        assert event.wait(timeout=60)  # main runs bytecode again: now the handler runs
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_wait_wakes_on_a_signal_another_thread_took(monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    monkeypatch.setattr(termination, "LOOK_S", 3600.0)  # no polling: only the wakeup fd can end the wait
    seen: list[int] = []
    with Termination(seen.append) as stop:
        sender = _signal_from_another_thread(signum)
        assert stop.wait(timeout=60)
        sender.join()
    assert stop.signum == signum and seen == [signum]


def test_the_handlers_and_wakeup_fd_are_put_back() -> None:
    before, before_fd = signal.getsignal(signal.SIGTERM), signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before_fd)
    with Termination():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.set_wakeup_fd(before_fd) == before_fd


def test_a_wait_with_a_timeout_ends_without_a_signal() -> None:
    with Termination() as stop:
        assert not stop.wait(timeout=0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(timeout=60)


def test_install_refuses_a_second_install_and_a_thread_other_than_main() -> None:
    with Termination() as stop, pytest.raises(RuntimeError, match="installed already"):
        stop.install()
    failed: list[BaseException] = []

    def install() -> None:
        try:
            Termination().install()
        except ValueError as e:
            failed.append(e)

    fds = len(os.listdir("/proc/self/fd"))
    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert len(failed) == 1 and "main thread" in str(failed[0])
    assert len(os.listdir("/proc/self/fd")) == fds  # no pipe left open
