"""What the driver's image is made of: Debian packages and Python wheels, pinned, fetched into the cache.

Two lock files in ``deploy/image/``, read by this builder and by ``deploy/Dockerfile`` alike:

- ``debian-packages.txt``: ``name=version`` of every Debian bookworm package unpacked into the image (Python 3.11
  and the libraries it and the wheels load); ``debian-packages-simulated.txt`` adds what the simulated NVML needs
  (``libpython3.11``, which the embedded simulator links). Fetched with ``apt-get download`` (the host's apt
  sources must be Debian bookworm's) into ``<cache>/plugin-image/debs/`` and unpacked with ``dpkg-deb -x``.
  Maintainer scripts are not run: the image needs none of what they do (users, alternatives, byte-compiling).
- ``requirements.txt``: ``name==version`` of every wheel installed into ``/usr/local/lib/python3.11/dist-packages``
  (the production distribution's dependencies and theirs), installed with ``pip install --target --no-deps
  --only-binary=:all:`` for CPython 3.11 on manylinux x86-64; pip keeps the downloads in its own cache.

``python -m sandbox.plugin_image lock`` rewrites the lock files: the packages' versions from the host's apt
candidates, the wheels' from this checkout's environment (``.venv``), so the image runs what the tests ran.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from sandbox.binaries import cache_root
from sandbox.errors import BuildFailed

Progress = Callable[[str], None]

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "deploy" / "image"
DEBIAN_LOCK = IMAGE_DIR / "debian-packages.txt"
DEBIAN_SIMULATED_LOCK = IMAGE_DIR / "debian-packages-simulated.txt"
WHEELS_LOCK = IMAGE_DIR / "requirements.txt"
WHEEL_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can carry
DEBIAN_RELEASE = "bookworm"
PYTHON = "3.11"
SITE_PACKAGES = f"usr/local/lib/python{PYTHON}/dist-packages"  # on Debian's sys.path, outside dpkg's files
# bookworm has glibc 2.36: wheels for it and older glibcs (pip does not widen an explicit --platform itself)
WHEEL_PLATFORMS = (*(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)), "manylinux2014_x86_64")

# the packages asked for; the lock adds their dependencies, less those only maintainer scripts use
DEBIAN_ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "python3-minimal", "python-is-python3", "libstdc++6")
DEBIAN_SIMULATED_ROOTS = ("libpython3.11",)
NOT_IN_IMAGE = frozenset(
    {"dpkg", "tar", "perl", "perl-base", "perl-modules-5.36", "libperl5.36", "install-info", "mailcap"}
    | {"mime-support", "libgdbm-compat4", "readline-common", "debconf"}
)


def wheel_roots() -> tuple[str, ...]:
    """The production distribution's dependencies, the simulated extra's included (deploy/image/pyproject.toml)."""
    project = tomllib.loads((IMAGE_DIR / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project.get("optional-dependencies", {}).get("simulated", [])]
    return tuple(Requirement(r).name for r in wanted)


def read_lock(path: Path) -> list[str]:
    """The entries of a lock file (``#`` comments and blank lines skipped)."""
    if not path.exists():
        raise BuildFailed(f"{path} is missing: python -m sandbox.plugin_image lock writes it")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _run(
    argv: list[str], what: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise BuildFailed(f"{what}: {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildFailed(f"{what}: {' '.join(argv[:3])} ... did not finish in {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise BuildFailed(f"{what} failed ({' '.join(argv[:4])} ...): {done.stderr.strip()[-2000:]}")
    return done.stdout


# --- Debian packages --------------------------------------------------------------------------------------------


APT_NO_EDGES = ("--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances")


def debian_closure(roots: tuple[str, ...]) -> list[str]:
    """``roots`` and their dependencies (no recommends), less ``NOT_IN_IMAGE``, as the host's apt resolves them."""
    out = _run(
        ["apt-cache", "depends", "--recurse", *APT_NO_EDGES, *roots],
        "resolving the image's Debian packages",
    )
    names = {line.strip() for line in out.splitlines() if line and not line[0].isspace() and "<" not in line}
    return sorted(names - NOT_IN_IMAGE)


def candidate_version(package: str) -> str:
    out = _run(["apt-cache", "policy", package], f"the version of {package}")
    match = re.search(r"^\s*Candidate:\s*(\S+)", out, flags=re.MULTILINE)
    if not match or match.group(1) == "(none)":
        raise BuildFailed(f"apt knows no candidate version of {package}: run apt-get update")
    return match.group(1)


def debs_dir() -> Path:
    return cache_root() / "plugin-image" / "debs"


def fetch_debs(pins: list[str], progress: Progress) -> list[Path]:
    """The ``.deb`` of every ``name=version`` pin (cached as ``<name>=<version>.deb``), downloaded when missing."""
    out = debs_dir()
    out.mkdir(parents=True, exist_ok=True)
    for pin in pins:
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+", pin):
            raise BuildFailed(f"{pin!r} in a Debian lock file is not name=version")
    missing = [pin for pin in pins if not (out / f"{pin}.deb").is_file()]
    if missing:
        progress(f"downloading {len(missing)} Debian package(s) with apt-get download into {out}")
        with tempfile.TemporaryDirectory(dir=out, prefix=".download-") as tmp:
            _run(["apt-get", "download", *missing], "apt-get download (is the version still on the mirror?)", Path(tmp))
            for deb in Path(tmp).glob("*.deb"):
                fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version"], f"reading {deb.name}")
                info = dict(line.split(": ", 1) for line in fields.strip().splitlines())
                shutil.move(str(deb), out / f"{info['Package']}={info['Version']}.deb")
    absent = [pin for pin in pins if not (out / f"{pin}.deb").is_file()]
    if absent:
        raise BuildFailed(f"apt-get download did not deliver {', '.join(absent)}")
    return [out / f"{pin}.deb" for pin in pins]


def unpack_debs(debs: list[Path], rootfs: Path) -> None:
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(rootfs)], f"unpacking {deb.name}")


# --- Python wheels ----------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_closure(roots: tuple[str, ...] | None = None) -> list[str]:
    """``name==version`` of ``roots`` (default: the image's) and their dependencies as installed here."""
    seen: dict[str, str] = {}
    stack = list(wheel_roots() if roots is None else roots)
    while stack:
        name = stack.pop()
        if _norm(name) in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise BuildFailed(
                f"{name} is not installed in {sys.prefix}: install the project (pip install -e .)"
            ) from exc
        seen[_norm(name)] = f"{dist.metadata['Name']}=={dist.version}"
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": "", "python_version": PYTHON}):
                stack.append(req.name)
    return [seen[k] for k in sorted(seen)]


def install_wheels(pins: list[str], project_wheel: Path, target: Path, progress: Progress) -> None:
    """Install ``pins`` and the project's wheel into ``target`` for the image's Python (not this one)."""
    progress(f"installing {len(pins)} wheel(s) and {project_wheel.name} for CPython {PYTHON} into the image")
    argv = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    argv += ["--no-deps", "--only-binary=:all:", "--target", str(target), "--python-version", PYTHON]
    argv += ["--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}"]
    for platform in WHEEL_PLATFORMS:
        argv += ["--platform", platform]
    _run([*argv, *pins, str(project_wheel)], "pip install of the image's wheels")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts name this interpreter; -m is the way in


def build_project_wheel(packages: tuple[str, ...], out: Path) -> Path:
    """The production distribution's wheel (deploy/image/pyproject.toml) holding ``packages``."""
    with tempfile.TemporaryDirectory(prefix="dra-image-wheel-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        shutil.copy(IMAGE_DIR / "pyproject.toml", stage / "pyproject.toml")
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in packages:
            shutil.copytree(ROOT / name, stage / name, ignore=ignore)
        build = Path(tmp) / "wheel"
        argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(build)]
        # the wheel's zip entries get this date instead of the files' times: pip records the wheel's hash
        env = os.environ | {"SOURCE_DATE_EPOCH": str(WHEEL_EPOCH)}
        _run([*argv, str(stage)], "building the project's wheel", env=env)
        (wheel,) = build.glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        target = out / wheel.name
        shutil.copy(wheel, target)
    return target


def write_locks(progress: Progress) -> None:
    header = "# Written by python -m sandbox.plugin_image lock; read by it and by deploy/Dockerfile.\n"
    for path, roots, base in (
        (DEBIAN_LOCK, DEBIAN_ROOTS, set()),
        (DEBIAN_SIMULATED_LOCK, DEBIAN_ROOTS + DEBIAN_SIMULATED_ROOTS, set(debian_closure(DEBIAN_ROOTS))),
    ):
        names = [n for n in debian_closure(roots) if n not in base]
        pins = [f"{n}={candidate_version(n)}" for n in names]
        path.write_text(
            header + f"# Debian {DEBIAN_RELEASE} packages (roots: {' '.join(roots)})\n" + "\n".join(pins) + "\n"
        )
        progress(f"{path}: {len(pins)} package(s)")
    pins = wheel_closure()
    WHEELS_LOCK.write_text(
        header + f"# wheels for CPython {PYTHON} (roots: {' '.join(wheel_roots())})\n" + "\n".join(pins) + "\n"
    )
    progress(f"{WHEELS_LOCK}: {len(pins)} wheel(s)")
