"""Answered: work left for after a call's answer starts when the call ends, exactly once, and at once after."""

from __future__ import annotations

import threading

from dra_driver.kubeletplugin.server import Answered


def test_work_waits_for_the_answer_and_runs_once_in_the_thread_that_sets_it() -> None:
    answered = Answered()
    ran: list[str] = []
    answered.then(lambda: ran.append(threading.current_thread().name))
    assert ran == [] and not answered.is_set()
    setter = threading.Thread(target=answered.set, name="the-call-ends")
    setter.start()
    setter.join()
    assert ran == ["the-call-ends"] and answered.is_set()
    answered.set()  # a second end (cancelled after answering) runs nothing again
    assert ran == ["the-call-ends"]


def test_work_registered_after_the_answer_runs_at_once() -> None:
    answered = Answered()
    answered.set()
    ran: list[int] = []
    answered.then(lambda: ran.append(1))
    assert ran == [1]
