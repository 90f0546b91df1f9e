"""The driver's image built without a container engine (sandbox/plugin_image.py): reproducible, holding the entry
points and only the production packages (plus the simulator in the simulated image), and deploy/Dockerfile
built from the same lock files."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from sandbox import oci, plugin_image, plugin_image_sources
from sandbox.plugin_image import ENTRYPOINT, ENV, SIM_DIR, Built, _entries, _prune, _sim_env, build
from sandbox.plugin_image_sources import (
    DEBIAN_LOCK,
    DEBIAN_RELEASE,
    DEBIAN_SIMULATED_LOCK,
    SITE_PACKAGES,
    WHEELS_LOCK,
    read_lock,
    wheel_closure,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
SITE = "/" + SITE_PACKAGES


def test_the_dockerfile_uses_the_same_debian_release_lock_files_and_site_packages() -> None:
    bases = re.findall(r"^FROM (\S+) AS (\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert bases == [
        (f"debian:{DEBIAN_RELEASE}-slim", "base"),
        ("base", "build"),
        ("base", "simulated"),
        ("base", "production"),  # the last stage: what a plain docker build makes
    ]
    for lock in (DEBIAN_LOCK, DEBIAN_SIMULATED_LOCK, WHEELS_LOCK):
        assert str(lock.relative_to(ROOT)) in DOCKERFILE
    assert f"COPY --from=build /site {SITE}" in DOCKERFILE
    assert f"COPY --from=build /site-sim {SITE}" in DOCKERFILE
    entrypoints = re.findall(r"^ENTRYPOINT (.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert [json.loads(e) for e in entrypoints] == [ENTRYPOINT, ENTRYPOINT]
    for variable in [e for e in ENV if not e.startswith("PATH=")] + _sim_env():  # Debian's PATH is the builder's
        assert variable in DOCKERFILE.replace("\\\n    ", " ")
    assert f"/{SIM_DIR}/standins" in DOCKERFILE


def test_the_lock_files_pin_every_entry_and_the_wheels_are_the_tested_ones() -> None:
    for lock in (DEBIAN_LOCK, DEBIAN_SIMULATED_LOCK):
        pins = read_lock(lock)
        assert pins and all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]*=\S+", p) for p in pins), lock
    assert any(p.startswith("python3.11-minimal=") for p in read_lock(DEBIAN_LOCK))
    assert [p.split("=")[0] for p in read_lock(DEBIAN_SIMULATED_LOCK)] == ["libpython3.11"]
    # this environment's versions: the image runs what the tests ran (python -m sandbox.plugin_image lock)
    assert read_lock(WHEELS_LOCK) == wheel_closure()


def test_file_entries_keep_modes_and_links_and_pruning_keeps_copyright_files(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3.11").write_bytes(b"\x7fELF")
    os.chmod(root / "usr/bin/python3.11", 0o755)
    (root / "usr/bin/python3").symlink_to("python3.11")
    for rel in ("usr/share/doc/libc6/copyright", "usr/share/doc/libc6/changelog.gz", "usr/share/man/man1/x.1"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    _prune(root)
    entries = {e.path: e for e in _entries(root)}
    assert set(entries) == {
        "usr",
        "usr/bin",
        "usr/bin/python3",
        "usr/bin/python3.11",
        "usr/share",
        "usr/share/doc",
        "usr/share/doc/libc6",
        "usr/share/doc/libc6/copyright",
    }
    assert entries["usr/bin/python3.11"] == oci.File("usr/bin/python3.11", b"\x7fELF", 0o755)
    assert entries["usr/bin/python3"] == oci.Symlink("usr/bin/python3", "python3.11")


def _layer_names(built: Built) -> tuple[set[str], dict[str, object]]:
    with tarfile.open(built.archive.path) as archive:
        index = json.loads(archive.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.loads(archive.extractfile(f"blobs/sha256/{manifest_digest}").read())  # type: ignore[union-attr]
        config_digest = manifest["config"]["digest"].removeprefix("sha256:")
        config = json.loads(archive.extractfile(f"blobs/sha256/{config_digest}").read())  # type: ignore[union-attr]
        layer = archive.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].removeprefix('sha256:')}")
        assert layer is not None
        with tarfile.open(fileobj=layer) as rootfs:
            return set(rootfs.getnames()), config["config"]


def _extract(built: Built, into: Path) -> Path:
    with tarfile.open(built.archive.path) as archive:
        archive.extractall(into / "oci", filter="tar")
    index = json.loads((into / "oci/index.json").read_text())
    manifest = json.loads((into / "oci/blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    rootfs = into / "rootfs"
    with tarfile.open(into / "oci/blobs/sha256" / manifest["layers"][0]["digest"][7:]) as layer:
        layer.extractall(rootfs, filter="tar")
    return rootfs


def _chroot(rootfs: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run(
        [chroot, str(rootfs), *argv],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _dev_nodes(rootfs: Path) -> None:
    """/dev/null, /dev/zero, /dev/random and /dev/urandom in ``rootfs``, as a container runtime makes them."""
    (rootfs / "dev").mkdir(exist_ok=True)
    for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
        node = rootfs / "dev" / name
        if not node.exists():
            os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))


can_chroot = pytest.mark.skipif(os.geteuid() != 0, reason="running the image's Python needs chroot (root)")


@pytest.mark.slow
def test_two_builds_give_the_same_digest_and_the_image_holds_the_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a frozen copy of the packaged sources: the checkout may change while the two builds run
    frozen = tmp_path / "src"
    for name in plugin_image.PRODUCTION:
        shutil.copytree(ROOT / name, frozen / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "deploy" / "image", frozen / "deploy" / "image")
    monkeypatch.setattr(plugin_image, "ROOT", frozen)
    monkeypatch.setattr(plugin_image_sources, "ROOT", frozen)
    monkeypatch.setattr(plugin_image_sources, "IMAGE_DIR", frozen / "deploy" / "image")
    digests = []
    for attempt in ("first", "second"):  # a fresh images directory each time: the archive is really rebuilt
        monkeypatch.setattr(plugin_image, "images_dir", lambda attempt=attempt: tmp_path / attempt)
        built = build("reprotest")
        assert built.archive.path.parent == tmp_path / attempt
        digests.append((built.archive.digest, built.archive.path.read_bytes()))
    assert digests[0] == digests[1]
    names, config = _layer_names(built)
    assert config["Entrypoint"] == ENTRYPOINT
    for module in ("kubelet_plugin/__main__.py", "controller/webhook/__main__.py"):
        assert f"{SITE_PACKAGES}/{module}" in names
    if (ROOT / "controller" / "__main__.py").exists():
        assert f"{SITE_PACKAGES}/controller/__main__.py" in names
    tops = {n[len(SITE_PACKAGES) + 1 :].split("/")[0] for n in names if n.startswith(SITE_PACKAGES + "/")}
    assert {"api", "dra_driver", "kubelet_plugin", "controller", "hpack", "kubernetes"} <= tops
    assert not {"nvml_sim", "sandbox", "cli", "tests", "e2e", "grpc"} & tops  # the plugin serves gRPC itself
    assert {"usr/bin/python3", "usr/bin/python", "etc/passwd", "tmp"} <= names
    assert not any(n.startswith(SIM_DIR) for n in names)


@pytest.mark.slow
@can_chroot
def test_the_images_python_runs_the_plugin_and_the_webhook(tmp_path: Path) -> None:
    rootfs = _extract(build(), tmp_path)
    plugin = _chroot(rootfs, "python", "-m", "kubelet_plugin", "--help")
    assert plugin.returncode == 0 and "--driver-root" in plugin.stdout, plugin.stderr
    webhook = _chroot(rootfs, "python", "-m", "controller.webhook", "--help")
    assert webhook.returncode == 0 and "--tls-cert" in webhook.stdout, webhook.stderr
    absent = _chroot(rootfs, "python", "-m", "nvml_sim.entrypoint")
    assert absent.returncode == 1 and "No module named 'nvml_sim'" in absent.stderr


@pytest.mark.slow
@can_chroot
def test_the_simulated_image_runs_the_plugin_on_its_prebuilt_simulated_nvml(tmp_path: Path) -> None:
    built = build(simulated=True)
    assert built.archive.ref.endswith(":dev-simulated")
    rootfs = _extract(built, tmp_path)
    assert (rootfs / SIM_DIR / "libnvidia-ml.so.1").is_file() and not list(rootfs.glob("usr/bin/*cc*"))
    env = dict(e.split("=", 1) for e in ENV + _sim_env())
    env |= {"SIMULATED_GPUS": "true", "SIMULATED_GPU_PROFILE": "dgx-a100", "NODE_NAME": "node-a"}
    _dev_nodes(rootfs)  # gRPC's runtime reads /dev/urandom (the container runtime gives a container /dev)
    # no API server here: the plugin registers, then gets as far as its kubeconfig, after loading the driver
    done = _chroot(rootfs, *ENTRYPOINT[:2], "nvml_sim.entrypoint", "--", "--kubeconfig", "/nonexistent", env=env)
    assert "simulated GPUs: dgx-a100 machine /var/lib/dra-gpu/simulated-gpus/machine.json" in done.stderr
    assert "driver 580.95.05 under /var/lib/dra-gpu/simulated-gpus/driver-root: 6 libraries" in done.stderr
    assert done.returncode != 0 and "/nonexistent" in done.stderr  # then it looked for the kubeconfig
    count = _chroot(
        rootfs,
        "python",
        "-c",
        "import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetCount())",
        env={"LD_LIBRARY_PATH": "/var/lib/dra-gpu/simulated-gpus/driver-root/usr/lib/x86_64-linux-gnu"}
        | {"DRA_SIM_NVML_STATE": "/var/lib/dra-gpu/simulated-gpus/machine.json"},
    )
    assert count.stdout.strip() == "8", count.stderr
