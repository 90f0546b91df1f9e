"""Spec files: atomic writes (no temp file left, never a partial file), removal, listing our specs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dra_driver.cdi import (
    ContainerEdits,
    Device,
    Spec,
    atomic,
    list_specs,
    remove_spec,
    remove_stale_temp_files,
    spec_file_name,
    write_spec,
)
from dra_driver.errors import ConfigError
from tests.cdi.specs import CLAIM_UID, KIND, full, minimal

NAME = spec_file_name(KIND, CLAIM_UID)


def spec_with_env(value: str) -> Spec:
    return Spec(KIND, (Device("gpu-0", ContainerEdits(env=(f"V={value}",))),))


def test_the_spec_directory_is_made_when_missing_even_after_it_was_removed_under_the_writer(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "cdi"
    write_spec(directory, full(), NAME)
    assert remove_spec(directory, NAME)  # its file is now a spare of this directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()  # a tmpfs wiped, say
    assert json.loads(write_spec(directory, full(), NAME).read_text()) == full().to_dict()


def test_written_spec_holds_the_json_and_no_temp_file_remains(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "cdi", full(), NAME)
    assert path == tmp_path / "cdi" / NAME
    assert json.loads(path.read_text()) == full().to_dict()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path / "cdi") == [NAME]


def test_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    write_spec(tmp_path, full(), NAME)
    write_spec(tmp_path, minimal(), NAME)
    assert json.loads((tmp_path / NAME).read_text()) == minimal().to_dict()


@pytest.mark.parametrize("failing", ["fsync", "replace", "fchmod"])
def test_failure_during_write_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    write_spec(tmp_path, spec_with_env("old"), NAME)

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        write_spec(tmp_path, spec_with_env("new"), NAME)
    monkeypatch.undo()
    assert json.loads((tmp_path / NAME).read_text()) == spec_with_env("old").to_dict()
    assert os.listdir(tmp_path) == [NAME]


def test_failure_on_first_write_leaves_no_file_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_spec(tmp_path, full(), NAME)
    assert os.listdir(tmp_path) == []


def test_rename_is_made_durable_by_fsyncing_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(atomic, "fsync_directory", synced.append)
    write_spec(tmp_path, full(), NAME)
    remove_spec(tmp_path, NAME)
    assert synced == [tmp_path, tmp_path]


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from dra_driver.cdi import atomic, write_spec
from tests.cdi.test_files import spec_with_env, NAME
atomic.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
write_spec(Path(sys.argv[1]), spec_with_env("new"), NAME)
"""


def test_writer_killed_before_rename_leaves_old_spec_and_a_temp_file_that_repair_removes(tmp_path: Path) -> None:
    write_spec(tmp_path, spec_with_env("old"), NAME)
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], cwd=root, check=False)
    assert done.returncode == -9
    assert json.loads((tmp_path / NAME).read_text()) == spec_with_env("old").to_dict()
    (temp,) = [p for p in tmp_path.iterdir() if p.name != NAME]
    assert temp.name.startswith(f".{NAME}.") and temp.suffix == ".tmp"  # hidden, and not *.json: runtimes skip it
    assert list_specs(tmp_path, KIND) == {CLAIM_UID: tmp_path / NAME}
    assert remove_stale_temp_files(tmp_path, KIND) == [temp]
    assert os.listdir(tmp_path) == [NAME]


def test_concurrent_reader_never_sees_a_partial_spec(tmp_path: Path) -> None:
    big = Spec(KIND, (Device("gpu-0", ContainerEdits(env=tuple(f"V{i}={'x' * 200}" for i in range(300)))),))
    small = spec_with_env("small")
    write_spec(tmp_path, small, NAME)
    stop = threading.Event()
    seen: list[str] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(json.loads((tmp_path / NAME).read_text())["devices"][0]["containerEdits"]["env"][0][:2])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(20):
            write_spec(tmp_path, big if i % 2 else small, NAME)
    finally:
        stop.set()
        reader.join()
    assert seen and set(seen) <= {"V=", "V0"}


def test_remove_is_idempotent(tmp_path: Path) -> None:
    write_spec(tmp_path, full(), NAME)
    assert remove_spec(tmp_path, NAME) is True
    assert remove_spec(tmp_path, NAME) is False
    assert list_specs(tmp_path, KIND) == {}
    assert os.listdir(tmp_path) == [f".{NAME}.spare.tmp"]  # kept hidden for the next write (spares.py)


def test_list_finds_only_our_kinds_specs_by_claim_uid(tmp_path: Path) -> None:
    write_spec(tmp_path, full(), NAME)
    write_spec(tmp_path, full(), spec_file_name(KIND, "uid-2"))
    (tmp_path / "k8s.gpu.dra-driver.dev-gpu_uid-3.yaml").write_text("---\n")
    (tmp_path / "nvidia.com-gpu_uid-4.json").write_text("{}")  # another vendor's
    (tmp_path / "k8s.gpu.dra-driver.dev-gpu_uid-5.json.bak").write_text("{}")
    (tmp_path / f".{NAME}.abc.tmp").write_text("{")
    (tmp_path / "k8s.gpu.dra-driver.dev-gpu_dir.json").mkdir()
    assert list_specs(tmp_path, KIND) == {
        CLAIM_UID: tmp_path / NAME,
        "uid-2": tmp_path / spec_file_name(KIND, "uid-2"),
        "uid-3": tmp_path / "k8s.gpu.dra-driver.dev-gpu_uid-3.yaml",
    }
    assert list_specs(tmp_path / "missing", KIND) == {}


@pytest.mark.parametrize("filename", ["../x.json", ".hidden.json", "spec.yaml", "spec"])
def test_unsafe_file_names_are_refused(tmp_path: Path, filename: str) -> None:
    with pytest.raises(ConfigError):
        write_spec(tmp_path, full(), filename)
