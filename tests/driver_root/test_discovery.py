"""Discovery of the driver's user-space files under a driver root, on fake trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from dra_driver.driver_root import DriverFile, discover_driver_files, library_dirs, resolve
from dra_driver.errors import ConfigError, FatalError
from tests.driver_root.fake_tree import LIBDIR, VERSION, driver, elf, library, link, put


def test_a_complete_installation_is_found_with_sonames_binaries_and_firmware(tmp_path: Path) -> None:
    driver(tmp_path)
    library(tmp_path, "libnvidia-nvvm", "libnvidia-nvvm.so.4")
    library(tmp_path, "libnvidia-gpucomp", f"libnvidia-gpucomp.so.{VERSION}")  # its SONAME is the versioned name
    library(tmp_path, "libnvidia-glcore", "libnvidia-glcore.so.1")  # graphics: not for compute/utility
    put(tmp_path, "usr/bin/nvidia-smi")
    put(tmp_path, "bin/nvidia-cuda-mps-control")
    put(tmp_path, "usr/bin/nvidia-settings")  # not injected
    for name in ("gsp_ga10x.bin", "gsp_tu10x.bin", "README"):
        put(tmp_path, f"lib/firmware/nvidia/{VERSION}/{name}")
    put(tmp_path, "lib/firmware/nvidia/570.1.1/gsp_ga10x.bin")  # another version's firmware

    files = discover_driver_files(tmp_path)

    assert files.version == VERSION
    assert [(lib.stem, lib.name, lib.soname) for lib in files.libraries] == [
        ("libcuda", f"libcuda.so.{VERSION}", "libcuda.so.1"),
        ("libnvidia-gpucomp", f"libnvidia-gpucomp.so.{VERSION}", f"libnvidia-gpucomp.so.{VERSION}"),
        ("libnvidia-ml", f"libnvidia-ml.so.{VERSION}", "libnvidia-ml.so.1"),
        ("libnvidia-nvvm", f"libnvidia-nvvm.so.{VERSION}", "libnvidia-nvvm.so.4"),
    ]
    assert files.binaries == (
        ("nvidia-cuda-mps-control", DriverFile("/bin/nvidia-cuda-mps-control", "/bin/nvidia-cuda-mps-control")),
        ("nvidia-smi", DriverFile("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi")),
    )
    assert [f.path for f in files.firmware] == [
        f"/lib/firmware/nvidia/{VERSION}/gsp_ga10x.bin",
        f"/lib/firmware/nvidia/{VERSION}/gsp_tu10x.bin",
    ]
    assert files.nvml_library == tmp_path / LIBDIR / f"libnvidia-ml.so.{VERSION}"


def test_without_optional_files_only_the_required_libraries_are_found(tmp_path: Path) -> None:
    files = discover_driver_files(driver(tmp_path))
    assert [lib.stem for lib in files.libraries] == ["libcuda", "libnvidia-ml"]
    assert files.binaries == () and files.firmware == ()


def test_no_driver_at_all_is_one_line_naming_the_root_the_files_and_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        discover_driver_files(tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FatalError) and "\n" not in message
    assert message.startswith(f"--driver-root: no NVIDIA driver under {tmp_path}: ")
    assert "libnvidia-ml.so.1, libcuda.so.1 not found" in message
    assert "point --driver-root (env DRIVER_ROOT) at the directory the driver is installed under" in message


def test_a_missing_libcuda_is_named_with_its_version_and_where_it_was_looked_for(tmp_path: Path) -> None:
    library(tmp_path, "libnvidia-ml", "libnvidia-ml.so.1")
    with pytest.raises(ConfigError, match=rf"libcuda\.so\.{VERSION} not found \(driver version {VERSION}; "):
        discover_driver_files(tmp_path)
    with pytest.raises(ConfigError) as caught:
        discover_driver_files(tmp_path)
    assert f"looked in /{LIBDIR}, /usr/lib)" in str(caught.value) and "libnvidia-ml" not in str(caught.value)


def test_a_dangling_soname_link_counts_as_missing(tmp_path: Path) -> None:
    driver(tmp_path)
    (tmp_path / LIBDIR / f"libcuda.so.{VERSION}").unlink()
    with pytest.raises(ConfigError, match=r"libcuda\.so\.580\.95\.05 not found"):
        discover_driver_files(tmp_path)


def test_symlinks_resolve_inside_the_root_so_mount_sources_are_real_files(tmp_path: Path) -> None:
    """Absolute link targets mean the root's paths, not the plugin's: the driver root is often a mount."""
    library(tmp_path, "libnvidia-ml", "libnvidia-ml.so.1", libdir="opt/nvidia/lib")
    library(tmp_path, "libcuda", "libcuda.so.1", libdir="opt/nvidia/lib")
    link(tmp_path, "usr/lib64", "/opt/nvidia/lib")  # an absolute directory link
    put(tmp_path, "opt/nvidia/bin/nvidia-smi")
    link(tmp_path, "usr/bin/nvidia-smi", "../../../../../opt/nvidia/bin/nvidia-smi")  # '..' stops at the root

    files = discover_driver_files(tmp_path, "/run/nvidia/driver")

    cuda = files.library("libcuda")
    assert cuda is not None
    assert cuda.file == DriverFile(f"/opt/nvidia/lib/libcuda.so.{VERSION}", f"/opt/nvidia/lib/libcuda.so.{VERSION}")
    assert files.binaries == (("nvidia-smi", DriverFile("/usr/bin/nvidia-smi", "/opt/nvidia/bin/nvidia-smi")),)
    assert files.host(cuda.file.real) == f"/run/nvidia/driver/opt/nvidia/lib/libcuda.so.{VERSION}"
    assert files.local(cuda.file.real) == tmp_path / f"opt/nvidia/lib/libcuda.so.{VERSION}"


def test_a_versioned_library_that_is_itself_a_link_is_mounted_from_its_target(tmp_path: Path) -> None:
    driver(tmp_path)
    put(tmp_path, f"usr/share/nvidia/libnvidia-cfg.so.{VERSION}", elf("libnvidia-cfg.so.1"))
    link(tmp_path, f"{LIBDIR}/libnvidia-cfg.so.{VERSION}", f"/usr/share/nvidia/libnvidia-cfg.so.{VERSION}")
    cfg = discover_driver_files(tmp_path).library("libnvidia-cfg")
    assert cfg is not None and cfg.soname == "libnvidia-cfg.so.1"
    assert cfg.file == DriverFile(
        f"/{LIBDIR}/libnvidia-cfg.so.{VERSION}", f"/usr/share/nvidia/libnvidia-cfg.so.{VERSION}"
    )


def test_a_symlink_loop_is_not_found(tmp_path: Path) -> None:
    link(tmp_path, "a", "b")
    link(tmp_path, "b", "/a")
    assert resolve(tmp_path, "/a") is None
    assert resolve(tmp_path, "/missing/x") is None


def test_a_merged_usr_library_directory_is_searched_once(tmp_path: Path) -> None:
    put(tmp_path, "usr/lib/placeholder")
    link(tmp_path, "lib", "usr/lib")
    (tmp_path / "usr/lib64").mkdir()
    link(tmp_path, "lib64", "/usr/lib64")
    assert library_dirs(tmp_path) == ["/usr/lib64", "/usr/lib"]


def test_without_elf_sonames_the_soname_link_beside_the_library_names_it(tmp_path: Path) -> None:
    for stem in ("libnvidia-ml", "libcuda"):
        put(tmp_path, f"{LIBDIR}/{stem}.so.{VERSION}", b"not an ELF file")
        link(tmp_path, f"{LIBDIR}/{stem}.so.1", f"{stem}.so.{VERSION}")
    put(tmp_path, f"{LIBDIR}/libnvidia-cfg.so.{VERSION}", b"no link either")
    files = discover_driver_files(tmp_path)
    assert [(lib.stem, lib.soname) for lib in files.libraries] == [
        ("libcuda", "libcuda.so.1"),
        ("libnvidia-cfg", None),
        ("libnvidia-ml", "libnvidia-ml.so.1"),
    ]


def test_32_bit_compatibility_libraries_are_passed_over_for_64_bit_ones(tmp_path: Path) -> None:
    library(tmp_path, "libnvidia-ml", "libnvidia-ml.so.1", bits=32)
    library(tmp_path, "libcuda", "libcuda.so.1", bits=32)
    driver(tmp_path, libdir="usr/lib64")
    files = discover_driver_files(tmp_path)
    assert {lib.file.real for lib in files.libraries} == {
        f"/usr/lib64/libcuda.so.{VERSION}",
        f"/usr/lib64/libnvidia-ml.so.{VERSION}",
    }


# --- which version, when several are installed ---------------------------------------------------------


def test_the_version_libnvidia_ml_so_1_points_at_wins_over_a_newer_leftover(tmp_path: Path) -> None:
    """ldconfig keeps the SONAME link on the installed driver: that is the NVML the plugin will load."""
    driver(tmp_path, "590.1.2")
    driver(tmp_path, "570.86.15")  # installed last: its links win
    files = discover_driver_files(tmp_path)
    assert files.version == "570.86.15"
    assert {lib.name for lib in files.libraries} == {"libcuda.so.570.86.15", "libnvidia-ml.so.570.86.15"}


def test_without_a_soname_link_the_newest_version_is_picked_numerically(tmp_path: Path) -> None:
    for version in ("580.95.05", "580.105.08", "575.51.3"):
        for stem in ("libnvidia-ml", "libcuda"):
            put(tmp_path, f"{LIBDIR}/{stem}.so.{version}", elf(f"{stem}.so.1"))
    assert discover_driver_files(tmp_path).version == "580.105.08"


def test_the_version_nvml_reports_is_used_when_given(tmp_path: Path) -> None:
    driver(tmp_path, "570.86.15")
    driver(tmp_path, VERSION)
    assert discover_driver_files(tmp_path, version="570.86.15").version == "570.86.15"
    with pytest.raises(ConfigError, match=r"libnvidia-ml\.so\.999\.1, libcuda\.so\.999\.1 not found"):
        discover_driver_files(tmp_path, version="999.1")
