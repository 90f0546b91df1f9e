"""docs/lint.md shows what ``dra-gpu lint`` prints for its example files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lint.test_command import dra_gpu

PAGE = Path(__file__).resolve().parents[2] / "docs" / "lint.md"


def files() -> dict[str, str]:
    """The page's YAML blocks that start with ``# <file name>``."""
    blocks = re.findall(r"```yaml\n(# (\S+)\n.*?)```", PAGE.read_text(), re.S)
    return {name: text for text, name in blocks}


def runs() -> list[tuple[list[str], str]]:
    """(arguments, expected output) of each ``$ dra-gpu lint ...`` console block."""
    blocks = re.findall(r"```console\n\$ dra-gpu (lint .*?)\n(.*?)```", PAGE.read_text(), re.S)
    return [(args.split(), output) for args, output in blocks]


def test_page_has_its_example_files_and_runs() -> None:
    assert set(files()) == {"claims.yaml", "fixed.yaml"}
    assert len(runs()) == 3


@pytest.mark.parametrize(("args", "expected"), runs(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_page_shows_the_output_of_each_run(
    args: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in files().items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    dra_gpu(*args)
    assert capsys.readouterr().out == expected
