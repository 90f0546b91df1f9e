"""Container images for the sandbox's real nodes, built locally as OCI-layout archives (no registry, no Docker).

Two linux/amd64 images of one uncompressed layer each, imported on a node with
``ctr -n k8s.io images import <archive>``:

- ``PAUSE_IMAGE``: the pod sandbox image, ``/pause`` compiled from ``pause.c`` with ``cc -static -Os``
  (needs gcc and glibc's static libc, the Debian package ``libc6-dev``);
- ``BUSYBOX_IMAGE``: the test image, the static busybox of the Debian package ``busybox-static`` with its
  applet links in ``/bin``, ``/etc/passwd`` and ``/etc/group`` with root, and ``/tmp`` (1777).

Archives live in ``<cache root>/images/`` (``$DRA_DRIVER_CACHE``, see :func:`sandbox.binaries.cache_root`),
named ``<name>-<tag>-<key>.tar`` where ``key`` hashes the inputs (this builder's ``FORMAT``, the source or
the busybox binary, the applet list, the compiler's version): they are built once, rebuilt when an input
changes, and written atomically. Reproducible: the same inputs give byte-identical archives.

    python -m sandbox.images     # ensure both archives, print ref, path and manifest digest
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import oci
from sandbox.atomic import write_atomic
from sandbox.binaries import cache_root
from sandbox.errors import BinariesUnavailable, BuildFailed

Progress = Callable[[str], None]

PAUSE_IMAGE = "sandbox.local/pause:3.10"
BUSYBOX_IMAGE = "sandbox.local/busybox:latest"
FORMAT = 1  # bump when the images change in a way the hashed inputs do not show
PAUSE_SOURCE = Path(__file__).resolve().parent / "pause.c"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    "sh", "env", "ls", "cat", "find", "sleep", "echo", "grep", "tr", "head", "tail", "wc", "readlink", "stat",
    "test", "[", "true", "false", "printf", "mkdir", "id", "hostname", "cp", "mv", "rm", "touch", "sed", "cut",
    "sort", "uname", "date", "kill", "ps", "nproc",
)  # fmt: skip
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
PT_INTERP = 3


@dataclass(frozen=True)
class ImageArchive:
    ref: str
    path: Path
    digest: str  # the manifest digest


def images_dir() -> Path:
    return cache_root() / "images"


def elf_interpreter(data: bytes) -> str | None:
    """The program interpreter (PT_INTERP) a 64-bit little-endian ELF asks for; None for a static binary."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            return data[p_offset : p_offset + p_filesz].rstrip(b"\0").decode()
    return None


def _compiler_version() -> str:
    cc = shutil.which("cc")
    if cc is None:
        return "no cc"
    done = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False, timeout=30)
    return done.stdout.splitlines()[0] if done.stdout else "cc without --version"


def compile_pause(progress: Progress) -> bytes:
    """``/pause``: ``pause.c`` compiled static and stripped."""
    cc = shutil.which("cc")
    if cc is None:
        raise BinariesUnavailable("no C compiler 'cc' on PATH for the pause image: apt-get install gcc libc6-dev")
    progress(f"compiling {PAUSE_SOURCE.name} (cc -static -Os)")
    with tempfile.TemporaryDirectory(prefix="pause-") as tmp:
        shutil.copyfile(PAUSE_SOURCE, Path(tmp) / "pause.c")
        cmd = [cc, "-static", "-Os", "-s", "-Wall", "-o", "pause", "pause.c"]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            if "-lc" in done.stderr:
                raise BinariesUnavailable(
                    "cannot link the pause image's program statically (no static libc): apt-get install libc6-dev"
                )
            raise BuildFailed(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr.strip()}")
        binary = (Path(tmp) / "pause").read_bytes()
    if elf_interpreter(binary) is not None:
        raise BuildFailed("cc -static produced a dynamically linked pause binary; is libc6-dev installed?")
    return binary


def static_busybox() -> bytes:
    """The static busybox of ``busybox-static`` (the dynamic ``busybox`` package would not run in an image)."""
    missing = f"the busybox image needs the static busybox at {BUSYBOX}: apt-get install busybox-static"
    try:
        data = BUSYBOX.read_bytes()
    except OSError as exc:
        raise BinariesUnavailable(f"{missing} ({exc.strerror})") from exc
    try:
        interpreter = elf_interpreter(data)
    except (ValueError, struct.error) as exc:
        raise BinariesUnavailable(f"{missing} ({BUSYBOX} is not an x86-64 ELF program)") from exc
    if interpreter is not None:
        raise BinariesUnavailable(f"{missing} ({BUSYBOX} is dynamically linked, against {interpreter})")
    return data


def _check_applets(busybox: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="busybox-") as tmp:
        program = Path(tmp) / "busybox"
        program.write_bytes(busybox)
        program.chmod(0o755)
        done = subprocess.run([str(program), "--list"], capture_output=True, text=True, check=False, timeout=30)
    missing = sorted(set(BUSYBOX_APPLETS) - set(done.stdout.split()))
    if missing:
        raise BinariesUnavailable(f"{BUSYBOX} lacks the applets {missing}: apt-get install busybox-static")


def pause_layer(binary: bytes) -> bytes:
    return oci.tar([oci.File("pause", binary, 0o755)])


def busybox_layer(busybox: bytes) -> bytes:
    entries: list[oci.Entry] = [
        oci.Dir("bin"),
        oci.File("bin/busybox", busybox, 0o755),
        oci.Dir("etc"),
        oci.File("etc/passwd", PASSWD),
        oci.File("etc/group", GROUP),
        oci.Dir("root", 0o700),
        oci.Dir("tmp", 0o1777),
        *(oci.Symlink(f"bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS),
    ]
    return oci.tar(entries)


def input_key(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def cached_digest(path: Path) -> str | None:
    """The manifest digest of an archive already in the cache, or None when it is missing or unreadable."""
    try:
        with tarfile.open(path) as archive:
            member = archive.extractfile("index.json")
            return None if member is None else oci.manifest_digest(member.read())
    except (OSError, tarfile.TarError, KeyError, ValueError):
        return None


def _ensure(
    ref: str, key: str, layer: Callable[[], bytes], config: Mapping[str, Any], progress: Progress
) -> ImageArchive:
    name = ref.rsplit("/", 1)[-1].replace(":", "-")
    path = images_dir() / f"{name}-{key}.tar"
    digest = cached_digest(path)
    if digest is not None:
        return ImageArchive(ref, path, digest)
    progress(f"building image {ref} into {path}")
    archive, digest = oci.image_archive(ref, layer(), config)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, archive)
    for stale in path.parent.glob(f"{name}-*.tar"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return ImageArchive(ref, path, digest)


def ensure_images(progress: Progress) -> tuple[ImageArchive, ...]:
    """Both archives, built into the cache when missing or out of date (about a second)."""
    pause_key = input_key(str(FORMAT), PAUSE_SOURCE.read_bytes(), _compiler_version())
    pause = _ensure(
        PAUSE_IMAGE, pause_key, lambda: pause_layer(compile_pause(progress)), {"Entrypoint": ["/pause"]}, progress
    )
    busybox = static_busybox()

    def busybox_checked() -> bytes:
        _check_applets(busybox)
        return busybox_layer(busybox)

    busybox_key = input_key(str(FORMAT), busybox, *BUSYBOX_APPLETS)
    test_image = _ensure(BUSYBOX_IMAGE, busybox_key, busybox_checked, {"Cmd": ["sh"], "Env": [PATH_ENV]}, progress)
    return (pause, test_image)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from sandbox.errors import SandboxError

    parser = argparse.ArgumentParser(prog="python -m sandbox.images", description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    try:
        archives = ensure_images(lambda line: print(line, file=sys.stderr, flush=True))
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for archive in archives:
        print(f"{archive.ref} {archive.path} {archive.digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
