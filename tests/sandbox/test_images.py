"""The sandbox's locally built images: valid OCI layouts that ``ctr images import`` names, the expected files,
reproducible bytes, a pause program that is static and stops cleanly, and a cache that builds only once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.wait import until
from sandbox import images, oci
from sandbox.errors import BinariesUnavailable, SandboxError
from sandbox.images import BUSYBOX_IMAGE, PAUSE_IMAGE, ImageArchive, elf_interpreter, ensure_images


def _tools_problem() -> str | None:
    """Why the images cannot be built here (no static busybox, no static libc), or None."""
    try:
        images.static_busybox()
        images.compile_pause(lambda _: None)
    except SandboxError as exc:
        return str(exc)
    return None


TOOLS_PROBLEM = _tools_problem()
needs_tools = pytest.mark.skipif(TOOLS_PROBLEM is not None, reason=TOOLS_PROBLEM or "")
REQUIRED_APPLETS = (
    "sh", "env", "ls", "cat", "find", "sleep", "echo", "grep", "tr", "head", "wc", "readlink", "stat", "test",
    "[", "true", "false", "printf", "mkdir", "id", "hostname",
)  # fmt: skip


def _members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        result = {}
        for info in archive.getmembers():
            f = archive.extractfile(info) if info.isfile() else None
            result[info.name] = (info, f.read() if f else b"")
        return result


class Layout:
    """An archive read back: its files, index, manifest, config and layer."""

    def __init__(self, path: Path) -> None:
        self.files = {name: data for name, (_, data) in _members(path.read_bytes()).items()}
        self.index = json.loads(self.files["index.json"])
        (self.descriptor,) = self.index["manifests"]
        self.manifest = json.loads(self.blob(self.descriptor))
        self.config = json.loads(self.blob(self.manifest["config"]))
        (layer,) = self.manifest["layers"]
        self.layer = self.blob(layer)

    def blob(self, descriptor: dict[str, Any]) -> bytes:
        data = self.files["blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")]
        assert oci.sha256(data) == descriptor["digest"]
        assert len(data) == descriptor["size"]
        return data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ImageArchive]]:
    if TOOLS_PROBLEM is not None:
        pytest.skip(TOOLS_PROBLEM)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRA_DRIVER_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield {a.ref: a for a in ensure_images(lambda _: None)}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRA_DRIVER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "images"


@pytest.mark.parametrize("ref", [PAUSE_IMAGE, BUSYBOX_IMAGE])
def test_the_archive_is_an_oci_layout_whose_digests_and_sizes_match_their_blobs(
    built: dict[str, ImageArchive], ref: str
) -> None:
    archive = built[ref]
    layout = Layout(archive.path)
    assert json.loads(layout.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert layout.index["schemaVersion"] == 2 and layout.index["mediaType"] == oci.INDEX
    assert layout.descriptor["mediaType"] == oci.MANIFEST
    assert layout.descriptor["digest"] == archive.digest
    assert layout.descriptor["annotations"] == {
        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
        "io.containerd.image.name": ref,
    }
    assert layout.descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    assert layout.manifest["schemaVersion"] == 2 and layout.manifest["mediaType"] == oci.MANIFEST
    assert layout.manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [d["mediaType"] for d in layout.manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar"]
    assert layout.config["rootfs"] == {"type": "layers", "diff_ids": [oci.sha256(layout.layer)]}
    assert (layout.config["architecture"], layout.config["os"]) == ("amd64", "linux")
    blobs = {name for name in layout.files if name.startswith("blobs/sha256/") and layout.files[name]}
    assert len(blobs) == 3  # manifest, config, layer: nothing else
    for name in blobs:
        assert "sha256:" + name.rsplit("/", 1)[1] == oci.sha256(layout.files[name])


def test_the_images_run_what_they_should(built: dict[str, ImageArchive]) -> None:
    assert Layout(built[PAUSE_IMAGE].path).config["config"] == {"Entrypoint": ["/pause"]}
    assert Layout(built[BUSYBOX_IMAGE].path).config["config"] == {
        "Cmd": ["sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    }


def test_the_busybox_layer_holds_busybox_its_applets_root_and_tmp(built: dict[str, ImageArchive]) -> None:
    members = _members(Layout(built[BUSYBOX_IMAGE].path).layer)
    for info, _ in members.values():
        assert (info.uid, info.gid, info.mtime) == (0, 0, 0), info.name
    busybox, data = members["bin/busybox"]
    assert busybox.isfile() and busybox.mode == 0o755 and data == images.BUSYBOX.read_bytes()
    for applet in REQUIRED_APPLETS:
        link, _ = members[f"bin/{applet}"]
        assert link.issym() and link.linkname == "busybox", applet
    assert members["tmp"][0].isdir() and members["tmp"][0].mode == 0o1777
    assert members["etc/passwd"][1].startswith(b"root:x:0:0:root:/root:/bin/sh\n")
    assert members["etc/group"][1].startswith(b"root:x:0:\n")
    assert members["etc/passwd"][0].mode == members["etc/group"][0].mode == 0o644


def test_the_pause_program_is_static(built: dict[str, ImageArchive]) -> None:
    members = _members(Layout(built[PAUSE_IMAGE].path).layer)
    assert list(members) == ["pause"]
    info, binary = members["pause"]
    assert info.isfile() and info.mode == 0o755 and (info.uid, info.gid) == (0, 0)
    assert elf_interpreter(binary) is None
    assert elf_interpreter(Path(sys.executable).resolve().read_bytes()) is not None  # the check sees dynamic ones


def _pause_program(built: dict[str, ImageArchive], directory: Path) -> Path:
    program = directory / "pause"
    program.write_bytes(_members(Layout(built[PAUSE_IMAGE].path).layer)["pause"][1])
    program.chmod(0o755)
    return program


def _catches(pid: int, sig: signal.Signals) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (sig - 1)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_0_on_a_stop_signal(built: dict[str, ImageArchive], tmp_path: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen([str(_pause_program(built, tmp_path))])
    try:
        until(lambda: proc.poll() is not None or _catches(proc.pid, sig), "pause's signal handlers", timeout=10)
        assert proc.poll() is None
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_pause_exits_0_on_a_sigterm_that_arrived_before_it_was_ready(
    built: dict[str, ImageArchive], tmp_path: Path
) -> None:
    program = _pause_program(built, tmp_path)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited: the signal waits, pending
    try:
        proc = subprocess.Popen([str(program)])
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    try:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


@needs_tools
def test_two_builds_into_two_caches_are_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    for name in ("one", "two"):
        monkeypatch.setenv("DRA_DRIVER_CACHE", str(tmp_path / name))
        builds.append(ensure_images(lambda _: None))
    one, two = builds
    assert [(a.ref, a.digest, a.path.name) for a in one] == [(a.ref, a.digest, a.path.name) for a in two]
    for a, b in zip(one, two, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()


@needs_tools
def test_a_cache_hit_builds_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    first = ensure_images(said.append)
    assert sum(line.startswith("building image") for line in said) == 2
    inodes = [a.path.stat().st_ino for a in first]

    def no_build(*_: Any) -> bytes:
        raise AssertionError("rebuilt on a cache hit")

    monkeypatch.setattr(images, "compile_pause", no_build)
    monkeypatch.setattr(images, "busybox_layer", no_build)
    said.clear()
    again = ensure_images(said.append)
    assert again == first and said == []
    assert [a.path.stat().st_ino for a in again] == inodes
    assert sorted(p.name for p in cache.iterdir()) == sorted(a.path.name for a in first)  # no temp files left


@needs_tools
def test_a_changed_input_rebuilds_and_drops_the_old_archive(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pause, old = ensure_images(lambda _: None)
    monkeypatch.setattr(images, "BUSYBOX_APPLETS", (*images.BUSYBOX_APPLETS, "uniq"))
    said: list[str] = []
    same_pause, new = ensure_images(said.append)
    assert same_pause == pause and said == [f"building image {BUSYBOX_IMAGE} into {new.path}"]
    assert new.path != old.path and not old.path.exists()
    assert new.digest != old.digest
    assert _members(Layout(new.path).layer)["bin/uniq"][0].linkname == "busybox"


def test_a_missing_busybox_names_the_package_to_install(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "BUSYBOX", cache / "no-busybox")
    with pytest.raises(BinariesUnavailable, match=r"apt-get install busybox-static"):
        images.static_busybox()


def test_a_dynamic_busybox_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "BUSYBOX", Path(sys.executable).resolve())
    with pytest.raises(BinariesUnavailable, match=r"busybox-static.*dynamically linked"):
        images.static_busybox()


def test_no_static_libc_names_libc6_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cc = tmp_path / "cc"
    fake_cc.write_text("#!/bin/sh\necho '/usr/bin/ld: cannot find -lc: No such file or directory' >&2\nexit 1\n")
    fake_cc.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BinariesUnavailable, match=r"apt-get install libc6-dev"):
        images.compile_pause(lambda _: None)


@needs_tools
def test_the_command_prints_ref_path_and_digest(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert images.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    archives = ensure_images(lambda _: None)
    assert lines == [f"{a.ref} {a.path} {a.digest}" for a in archives]


def test_a_layer_tar_is_sorted_and_anonymous_and_refuses_duplicates() -> None:
    layer = oci.tar([oci.File("b", b"x"), oci.Dir("a"), oci.Symlink("a/l", "../b")])
    assert layer == oci.tar([oci.Symlink("a/l", "../b"), oci.File("b", b"x"), oci.Dir("a")])
    members = _members(layer)
    assert list(members) == ["a", "a/l", "b"]
    assert all((i.uid, i.gid, i.uname, i.gname, i.mtime) == (0, 0, "", "", 0) for i, _ in members.values())
    with pytest.raises(ValueError, match="duplicate"):
        oci.tar([oci.File("b", b"x"), oci.Dir("b")])
    with pytest.raises(ValueError, match="relative"):
        oci.tar([oci.File("/etc/passwd", b"")])


def test_the_tag_is_the_part_after_the_last_colon_of_the_last_component() -> None:
    assert oci.tag_of("sandbox.local/busybox:latest") == "latest"
    assert oci.tag_of("localhost:5000/pause:3.10") == "3.10"
    with pytest.raises(ValueError, match="no tag"):
        oci.tag_of("localhost:5000/pause")
