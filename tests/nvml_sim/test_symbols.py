"""The library exports every NVML symbol a client binds, with NVML's signature; the unsimulated ones say so."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pynvml
import pytest

from nvml_sim import codes, csource
from nvml_sim.build import library_path
from tests.conftest import MachineFactory

SIZES = {"char": 1, "short": 2, "int": 4, "long": 8, "long long": 8, "float": 4, "double": 8}


def abi_class(declaration: str, types: dict[str, str]) -> str:
    """How a parameter is passed on x86-64: a pointer, or an integer of some width."""
    if "*" in declaration or "[" in declaration:
        return "pointer"
    words = re.findall(r"\w+", declaration)[:-1]
    kind = types.get(words[-1], " ".join(words))
    if kind == "handle":
        return "pointer"
    if kind == "enum":
        return "4"
    base = " ".join(w for w in kind.split() if w not in ("const", "unsigned", "signed")) or "int"
    return str(SIZES[base])


def test_every_symbol_go_nvml_or_pynvml_binds_is_exported() -> None:
    lib = ctypes.CDLL(str(library_path()))
    bound = {name for name, f in csource.api()["functions"].items() if f["by"]}
    assert len(bound) > 400
    missing = sorted(name for name in bound if not hasattr(lib, name))
    assert missing == []


def test_the_symbol_table_knows_every_function_the_installed_pynvml_binds() -> None:
    source = Path(pynvml.__file__).read_text()
    binds = set(re.findall(r'_nvmlGetFunctionPointer\("(nvml\w+)"\)', source))
    table = {name for name, f in csource.api()["functions"].items() if "pynvml" in f["by"]}
    assert binds - table == set(), "regenerate nvml_sim/nvml_api.json: python -m tools.gonvml.api_table"


def test_simulated_functions_have_the_headers_signature() -> None:
    header = csource.header_prototypes()
    types = csource.api()["types"]
    for name, mine in csource.python_prototypes().items():
        theirs = header[name]
        assert mine.ret == theirs.ret, name
        assert [abi_class(p, types) for p in mine.params] == [abi_class(p, types) for p in theirs.params], name


def test_a_function_that_is_not_simulated_is_not_supported_within_a_session(machine: MachineFactory) -> None:
    lib = ctypes.CDLL(str(library_path()))
    speed = ctypes.c_uint()
    machine("single-a100", init=False)
    assert lib.nvmlDeviceGetFanSpeed(None, ctypes.byref(speed)) == codes.UNINITIALIZED
    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        assert lib.nvmlDeviceGetFanSpeed(h, ctypes.byref(speed)) == codes.NOT_SUPPORTED
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetBoardPartNumber(h)
    finally:
        pynvml.nvmlShutdown()
    assert lib.nvmlDeviceGetFanSpeed(None, ctypes.byref(speed)) == codes.UNINITIALIZED


def test_error_strings_are_nvmls_without_a_session() -> None:
    error_string = ctypes.CDLL(str(library_path())).nvmlErrorString
    error_string.restype = ctypes.c_char_p
    for code, text in codes.STRINGS.items():
        assert error_string(code) == text.encode()
    assert error_string(12345) == b"Unknown Error"
