"""bench_prepare's --against figures (the JSON keys docs/benchmarks.md lists) and its refusal of a non-checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import bench_prepare


def _figures(ours_prepare_ms: float, ours_unprepare_ms: float) -> dict[str, Any]:
    return {"nostatus_prepare_p50_ms": ours_prepare_ms, "nostatus_unprepare_p50_ms": ours_unprepare_ms}


def test_against_figures_are_its_percentiles_and_ours_over_them(tmp_path: Path) -> None:
    prepare = [0.004 + i * 1e-5 for i in range(100)]  # 4.00-4.99 ms
    unprepare = [0.002] * 100
    r = _figures(3.8, 2.2)
    bench_prepare._against(r, (prepare, unprepare), tmp_path)
    assert r["against"] == str(tmp_path) and r["against_commit"] is None  # not a git checkout
    assert (r["against_prepare_p50_ms"], r["against_prepare_p99_ms"]) == (4.5, 4.99)
    assert r["against_unprepare_p50_ms"] == 2.0
    assert (r["against_prepare_ratio"], r["against_unprepare_ratio"]) == (0.844, 1.1)
    rows = bench_prepare._against_rows(r)
    assert str(tmp_path) in rows[0] and "0.844x" in rows[1]
    assert bench_prepare._against_rows(_figures(1, 1)) == []


def test_against_names_the_checkouts_commit(tmp_path: Path) -> None:
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True)
    r = _figures(1, 1)
    bench_prepare._against(r, ([0.001], [0.001]), tmp_path)
    assert r["against_commit"] == head.stdout.strip()
    assert head.stdout.strip() in bench_prepare._against_rows(r)[0]


def test_against_a_directory_that_is_no_checkout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_prepare", "--against", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench_prepare.main()
    assert f"--against {tmp_path}: not a checkout" in capsys.readouterr().err
