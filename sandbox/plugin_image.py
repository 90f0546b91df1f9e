"""The driver's container image, built without a container engine, as a reproducible OCI-layout archive.

One linux/amd64 layer: Debian bookworm's Python 3.11 and the libraries it loads (``deploy/image/
debian-packages.txt``, unpacked with ``dpkg-deb -x``), the pinned wheels (``deploy/image/requirements.txt``) and
the production distribution's own wheel (``deploy/image/pyproject.toml``: api, dra_driver, kubelet_plugin,
controller) in ``/usr/local/lib/python3.11/dist-packages`` (plugin_image_sources.py). As on Debian's slim images,
``/usr/share/{doc,man,info,locale}`` are left out (the packages' copyright files stay). Entry points::

    python -m kubelet_plugin          the kubelet plugin (the image's entry point)
    python -m controller.webhook      the admission webhook
    python -m controller              the cluster controller (when the checkout has controller/__main__.py)

``--simulated`` builds ``<repository>:<tag>-simulated``: the same plus ``nvml_sim`` in the wheel, ``libpython3.11``
(the simulated NVML embeds Python and links it), and under ``/opt/dra-gpu/nvml-sim/`` the simulated
``libnvidia-ml.so.1`` (compiled with cffi by the host's Debian ``/usr/bin/python3.11``, which needs the package
``python3.11-dev``, against the image's cffi) and the driver stand-in libraries, named by ``NVML_SIM_LIBRARY`` and
``NVML_SIM_STANDINS`` in the image's environment: the image has no C compiler. Its entry point is the plugin's;
the chart runs ``python -m nvml_sim.entrypoint`` there (docs/deploy.md).

Archives are cached as ``<cache>/images/<name>-<tag>-<key>.tar``, ``key`` hashing every input (the lock files, the
packaged sources, for ``--simulated`` the built libraries); the same inputs give byte-identical archives. The
compiled simulator libraries are built once per cache: a fresh cache compiles them again, and a compiler may not
give the same bytes twice.

    python -m sandbox.plugin_image [--simulated] [--tag dev]    # prints ref, path, manifest digest, size, seconds
    python -m sandbox.plugin_image lock                         # rewrites the lock files
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox import oci
from sandbox.atomic import write_atomic
from sandbox.binaries import cache_root
from sandbox.errors import BuildFailed, SandboxError
from sandbox.images import GROUP, PASSWD, ImageArchive, cached_digest, images_dir, input_key
from sandbox.plugin_image_sources import (
    DEBIAN_LOCK,
    DEBIAN_SIMULATED_LOCK,
    PYTHON,
    ROOT,
    SITE_PACKAGES,
    WHEELS_LOCK,
    Progress,
    build_project_wheel,
    fetch_debs,
    install_wheels,
    read_lock,
    unpack_debs,
    write_locks,
)

REPOSITORY = "sandbox.local/dra-gpu-plugin"
DEFAULT_TAG = "dev"
FORMAT = 1  # bump when the image changes in a way the hashed inputs do not show
PRODUCTION = ("api", "dra_driver", "kubelet_plugin", "controller")
SIMULATOR = "nvml_sim"
SIM_DIR = "opt/dra-gpu/nvml-sim"
HOST_PYTHON = Path(f"/usr/bin/python{PYTHON}")  # Debian's: compiles the simulated NVML for the image's Python
PRUNED = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian")
ENTRYPOINT = ["python3", "-m", "kubelet_plugin"]
ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "PYTHONDONTWRITEBYTECODE=1",  # the image's files stay as built
]


@dataclass(frozen=True)
class Built:
    archive: ImageArchive
    size: int  # bytes of the archive
    seconds: float  # this call's wall time (a cache hit is fast)


def image_ref(tag: str, simulated: bool, repository: str = REPOSITORY) -> str:
    return f"{repository}:{tag}-simulated" if simulated else f"{repository}:{tag}"


def _sources(packages: tuple[str, ...]) -> list[bytes]:
    """Every packaged file's path and content (what goes into the project's wheel), sorted."""
    parts: list[bytes] = []
    for name in packages:
        for path in sorted((ROOT / name).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                parts += [str(path.relative_to(ROOT)).encode(), path.read_bytes()]
    return parts


def simulated_libraries(site_packages: Path, progress: Progress) -> tuple[Path, Path]:
    """The simulated NVML built for the image's Python, and the stand-in libraries' directory."""
    from nvml_sim.driver_install import standins_dir

    if not HOST_PYTHON.exists():
        raise BuildFailed(
            f"{HOST_PYTHON} (Debian's python{PYTHON}) is missing: the simulated NVML is compiled for the image's "
            f"Python with it; apt-get install python{PYTHON}-dev"
        )
    cache = cache_root() / "plugin-image"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{site_packages}:{ROOT}",
        "DRA_DRIVER_CACHE": str(cache / f"nvml-sim-py{PYTHON}"),
        "CFLAGS": "-g0",  # no debug information: it would carry the build's temporary paths
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    progress(f"compiling the simulated NVML for the image with {HOST_PYTHON} (cached)")
    done = subprocess.run(
        [str(HOST_PYTHON), "-m", "nvml_sim.build"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise BuildFailed(f"building the simulated NVML with {HOST_PYTHON} failed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip()) / "libnvidia-ml.so.1", standins_dir()


def _entries(rootfs: Path) -> list[oci.Entry]:
    entries: list[oci.Entry] = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            rel = str(path.relative_to(rootfs))
            st = path.lstat()
            if path.is_symlink():
                entries.append(oci.Symlink(rel, os.readlink(path)))
            elif path.is_dir():
                entries.append(oci.Dir(rel, st.st_mode & 0o7777))
            elif path.is_file():
                entries.append(oci.File(rel, path.read_bytes(), st.st_mode & 0o7777))
            else:
                raise BuildFailed(f"{rel} in the image's file system is neither file, directory nor link")
    return entries


def _prune(rootfs: Path) -> None:
    for rel in PRUNED:
        shutil.rmtree(rootfs / rel, ignore_errors=True)
    for doc in (rootfs / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for item in doc.iterdir():
                if item.name != "copyright":
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def _layer(
    debs: list[Path], wheels: list[str], packages: tuple[str, ...], simulated: bool, key: str, progress: Progress
) -> bytes:
    with tempfile.TemporaryDirectory(prefix="dra-plugin-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        progress(f"unpacking {len(debs)} Debian package(s)")
        unpack_debs(debs, rootfs)
        _prune(rootfs)
        # pip records the wheel's path: one per input key, so that checkouts building at once never share it
        wheel = build_project_wheel(packages, _wheel_dir(key))
        install_wheels(wheels, wheel, rootfs / SITE_PACKAGES, progress)
        if simulated:
            nvml, standins = simulated_libraries(rootfs / SITE_PACKAGES, progress)
            sim = rootfs / SIM_DIR
            (sim / "standins").mkdir(parents=True)
            shutil.copy(nvml, sim / "libnvidia-ml.so.1")
            for lib in sorted(standins.glob("lib*.so*")):
                shutil.copy(lib, sim / "standins" / lib.name)
        (rootfs / "etc").mkdir(exist_ok=True)
        (rootfs / "etc/passwd").write_bytes(PASSWD)
        (rootfs / "etc/group").write_bytes(GROUP)
        (rootfs / "tmp").mkdir(exist_ok=True)
        os.chmod(rootfs / "tmp", 0o1777)
        return oci.tar(_entries(rootfs))


def build(tag: str = DEFAULT_TAG, simulated: bool = False, progress: Progress = lambda _: None) -> Built:
    """The image's archive, built into the cache unless the same inputs built it before."""
    started = time.monotonic()
    ref = image_ref(tag, simulated)
    pins = read_lock(DEBIAN_LOCK) + (read_lock(DEBIAN_SIMULATED_LOCK) if simulated else [])
    wheels = read_lock(WHEELS_LOCK)
    packages = PRODUCTION + ((SIMULATOR,) if simulated else ())
    inputs: list[bytes | str] = [str(FORMAT), ref, *pins, *wheels, (ROOT / "deploy/image/pyproject.toml").read_bytes()]
    inputs += _sources(packages)
    if simulated:
        from nvml_sim.driver_install import standins_dir

        inputs += [HOST_PYTHON.resolve().read_bytes() if HOST_PYTHON.exists() else b""]
        inputs += [p.read_bytes() for p in sorted(standins_dir().glob("lib*.so*"))]
    config = {"Entrypoint": ENTRYPOINT, "Env": ENV + (_sim_env() if simulated else []), "WorkingDir": "/"}
    key = input_key(*inputs, oci.canonical_json(config))
    name = ref.rsplit("/", 1)[-1].replace(":", "-")
    path = images_dir() / f"{name}-{key}.tar"
    digest = cached_digest(path)
    if digest is None:
        progress(f"building image {ref} into {path}")
        debs = fetch_debs(pins, progress)
        layer = _layer(debs, wheels, packages, simulated, key, progress)
        archive, digest = oci.image_archive(ref, layer, config)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, archive)
        for stale in path.parent.glob(f"{name}-*.tar"):  # older keys of this name (not <name>-simulated-<key>)
            if stale != path and re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}\.tar", stale.name):
                stale.unlink(missing_ok=True)
    return Built(ImageArchive(ref, path, digest), path.stat().st_size, time.monotonic() - started)


def _wheel_dir(key: str) -> Path:
    """Where the project's wheel for input ``key`` is built; other keys' wheels older than a day are removed."""
    wheels = cache_root() / "plugin-image" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for old in wheels.iterdir():
        if old.name != key and time.time() - old.stat().st_mtime > 86_400:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    return wheels / key


def _sim_env() -> list[str]:
    return [f"NVML_SIM_LIBRARY=/{SIM_DIR}/libnvidia-ml.so.1", f"NVML_SIM_STANDINS=/{SIM_DIR}/standins"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.plugin_image", description=__doc__.split("\n")[0])
    parser.add_argument("action", nargs="?", choices=("build", "lock"), default="build")
    parser.add_argument("--simulated", action="store_true", help="the simulated-GPU image (<tag>-simulated)")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"the image's tag (default {DEFAULT_TAG})")
    args = parser.parse_args(argv)
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.action == "lock":
            write_locks(progress)
            return 0
        built = build(args.tag, args.simulated, progress)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    a = built.archive
    print(f"{a.ref} {a.path} {a.digest} {built.size} bytes {built.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
