"""API timeouts are settings, resolved once and kept inside the kubelet's deadline."""

from __future__ import annotations

import pytest

from dra_driver.k8s import Timeouts
from kubelet_plugin.settings import parse


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("API_CONNECT_TIMEOUT", "API_READ_TIMEOUT"):
        monkeypatch.delenv(env, raising=False)


def test_api_timeouts_default_to_5s_connect_and_15s_read() -> None:
    assert parse(["--node-name", "n"]).api_timeouts == Timeouts(5.0, 15.0)


def test_api_timeouts_come_from_flags() -> None:
    s = parse(["--node-name", "n", "--api-connect-timeout", "2", "--api-read-timeout", "10.5"])
    assert s.api_timeouts == Timeouts(2.0, 10.5)


@pytest.mark.parametrize(("connect", "read"), [("0", "10"), ("5", "40"), ("x", "1")])
def test_timeouts_that_miss_the_kubelet_deadline_or_make_no_sense_are_refused(
    connect: str, read: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(["--node-name", "n", "--api-connect-timeout", connect, "--api-read-timeout", read])
    assert "timeout" in capsys.readouterr().err
