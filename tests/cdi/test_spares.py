"""Spare files (dra_driver/cdi/spares.py): a removed spec's file carries the next write, whole and atomic."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from dra_driver.cdi import list_specs, remove_spec, remove_stale_temp_files, spec_file_name, write_spec
from dra_driver.cdi.spares import MAX_SPARES
from tests.cdi.specs import CLAIM_UID, KIND, full
from tests.cdi.test_files import NAME, spec_with_env

OTHER = spec_file_name(KIND, "7f0e1a52-0000-4c44-9a1e-3d1f6b0c2a11")


def test_the_next_write_reuses_a_removed_specs_file_and_holds_exactly_the_new_spec(tmp_path: Path) -> None:
    write_spec(tmp_path, full(), NAME)
    removed = (tmp_path / NAME).stat().st_ino
    remove_spec(tmp_path, NAME)
    write_spec(tmp_path, spec_with_env("short"), OTHER)  # shorter than the removed spec: nothing of it is left
    written = tmp_path / OTHER
    assert written.stat().st_ino == removed, "the spare's file, not a new one"
    assert json.loads(written.read_text()) == spec_with_env("short").to_dict()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == [OTHER]


def test_a_spare_removed_by_someone_else_is_skipped(tmp_path: Path) -> None:
    write_spec(tmp_path, full(), NAME)
    remove_spec(tmp_path, NAME)
    assert remove_stale_temp_files(tmp_path, KIND) == [tmp_path / f".{NAME}.spare.tmp"]  # start-up repair
    write_spec(tmp_path, spec_with_env("new"), OTHER)
    assert json.loads((tmp_path / OTHER).read_text()) == spec_with_env("new").to_dict()
    assert os.listdir(tmp_path) == [OTHER]


def test_at_most_max_spares_are_kept(tmp_path: Path) -> None:
    names = [spec_file_name(KIND, f"{i:08x}-0000-4c44-9a1e-3d1f6b0c2a11") for i in range(MAX_SPARES + 3)]
    for name in names:
        write_spec(tmp_path, full(), name)
    for name in names:
        assert remove_spec(tmp_path, name) is True
    assert list_specs(tmp_path, KIND) == {}
    assert len(os.listdir(tmp_path)) == MAX_SPARES


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from dra_driver.cdi import remove_spec, write_spec
from tests.cdi.test_files import spec_with_env, NAME
from tests.cdi.test_spares import OTHER
directory = Path(sys.argv[1])
write_spec(directory, spec_with_env("gone"), OTHER)
remove_spec(directory, OTHER)  # a spare now
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
write_spec(directory, spec_with_env("new"), NAME)
"""


def test_a_writer_killed_before_the_rename_leaves_the_old_spec_and_a_spare_that_repair_removes(
    tmp_path: Path,
) -> None:
    write_spec(tmp_path, spec_with_env("old"), NAME)
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], cwd=root, check=False)
    assert done.returncode == -9
    assert json.loads((tmp_path / NAME).read_text()) == spec_with_env("old").to_dict()
    assert list_specs(tmp_path, KIND) == {CLAIM_UID: tmp_path / NAME}
    (spare,) = remove_stale_temp_files(tmp_path, KIND)
    assert spare.name == f".{OTHER}.spare.tmp"
    assert os.listdir(tmp_path) == [NAME]


def test_writers_and_removers_at_once_lose_nothing(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def churn(k: int) -> None:
        try:
            for i in range(40):
                name = spec_file_name(KIND, f"{k:04x}{i:04x}-0000-4c44-9a1e-3d1f6b0c2a11")
                write_spec(tmp_path, spec_with_env(f"{k}-{i}" * (i % 5 + 1)), name)
                assert json.loads((tmp_path / name).read_text()) == spec_with_env(f"{k}-{i}" * (i % 5 + 1)).to_dict()
                if i % 3:
                    assert remove_spec(tmp_path, name) is True
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = {n for n in os.listdir(tmp_path) if not n.startswith(".")}
    assert len(kept) == 4 * len([i for i in range(40) if not i % 3])
    assert len(os.listdir(tmp_path)) - len(kept) <= MAX_SPARES
