"""Settings are resolved once: API timeouts inside the kubelet's deadline, the driver root, sysfs, numbers checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from dra_driver.k8s import Timeouts
from kubelet_plugin.settings import parse


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("API_CONNECT_TIMEOUT", "API_READ_TIMEOUT", "DRIVER_ROOT", "HOST_DRIVER_ROOT", "SYSFS_ROOT"):
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


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--rescan-seconds", "soon", "--rescan-seconds: 'soon' is not a number"),
        ("--rescan-seconds", "0", "--rescan-seconds: 0 is out of range"),
        ("--health-port", "80.5", "--health-port: '80.5' is not a whole number (0..65535)"),
        ("--health-port", "70000", "--health-port: 70000 is out of range (0..65535)"),
    ],
)
def test_numbers_are_checked_with_their_flag_and_range(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(["--node-name", "n", flag, value])
    assert says in capsys.readouterr().err


def test_a_socket_path_too_long_for_unix_sockets_is_refused_naming_the_directory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse(["--node-name", "n", "--plugins-dir", "/" + "d" * 100])
    err = capsys.readouterr().err
    assert "--plugins-dir: the socket" in err and "at most 107: use a shorter directory" in err


def test_the_driver_root_defaults_to_the_hosts_root() -> None:
    s = parse(["--node-name", "n"])
    assert (s.driver_root, s.host_driver_root, s.nvml_lib) == (Path("/"), "/", None)


def test_a_mounted_driver_root_names_the_host_directory_for_cdi_mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIVER_ROOT", "/driver-root")
    s = parse(["--node-name", "n", "--host-driver-root", "/run/nvidia/driver"])
    assert (s.driver_root, s.host_driver_root) == (Path("/driver-root"), "/run/nvidia/driver")
    assert parse(["--node-name", "n"]).host_driver_root == "/driver-root"  # default: the same directory


def test_sysfs_is_the_hosts_unless_a_flag_or_the_environment_names_a_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse(["--node-name", "n"]).sysfs_root == Path("/sys")
    monkeypatch.setenv("SYSFS_ROOT", "/host/sys")
    assert parse(["--node-name", "n"]).sysfs_root == Path("/host/sys")
    assert parse(["--node-name", "n", "--sysfs-root", "/machine.sys"]).sysfs_root == Path("/machine.sys")


def test_a_relative_host_driver_root_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--node-name", "n", "--host-driver-root", "run/nvidia/driver"])
    assert "--host-driver-root: 'run/nvidia/driver' must be an absolute path" in capsys.readouterr().err


def test_claim_device_status_is_on_unless_turned_off_and_only_true_or_false(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse(["--node-name", "n"]).claim_device_status is True
    assert parse(["--node-name", "n", "--claim-device-status", "False"]).claim_device_status is False
    monkeypatch.setenv("CLAIM_DEVICE_STATUS", "false")
    assert parse(["--node-name", "n"]).claim_device_status is False
    with pytest.raises(SystemExit):
        parse(["--node-name", "n", "--claim-device-status", "off"])
    assert "--claim-device-status: 'off' is not a boolean; valid: true, false" in capsys.readouterr().err
