"""Run NVML clients that are not this Python (a C host, the Go client) against a simulated machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HOST_C = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
/* Loads NVML the way nvidia-smi does (RTLD_LOCAL, or RTLD_GLOBAL with "global") and prints what it answers. */
int main(int argc, char **argv) {
    int mode = (argc > 1 && strcmp(argv[1], "global") == 0) ? RTLD_GLOBAL : RTLD_LOCAL;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | mode);
    if (lib == NULL) { printf("dlopen %s\n", dlerror()); return 2; }
    int (*init)(void) = (int (*)(void))dlsym(lib, "nvmlInit_v2");
    int (*count)(unsigned int *) = (int (*)(unsigned int *))dlsym(lib, "nvmlDeviceGetCount_v2");
    int (*fan)(void *, unsigned int *) = (int (*)(void *, unsigned int *))dlsym(lib, "nvmlDeviceGetFanSpeed");
    const char *(*error)(int) = (const char *(*)(int))dlsym(lib, "nvmlErrorString");
    unsigned int n = 999, speed = 0;
    int r = init();
    printf("init %d %s\n", r, error(r));
    r = count(&n);
    printf("count %d %u\n", r, n);
    printf("fan %d\n", fan(NULL, &speed));
    return 0;
}
"""


def c_host(directory: Path) -> Path:
    """A C program that loads libnvidia-ml.so.1 with dlopen (skips the test without a C compiler)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler (cc) to build the C host")
    source, binary = directory / "host.c", directory / "host"
    source.write_text(HOST_C)
    subprocess.run([cc, "-o", str(binary), str(source), "-ldl"], check=True, capture_output=True)
    return binary


def sim_env(state: Path) -> dict[str, str]:
    """The environment after ``eval "$(dra-gpu sim env STATE)"`` in a shell (from a bare PATH, no Python vars)."""
    cli = f"{sys.executable} -c 'import sys; from cli.main import main; sys.exit(main(sys.argv[1:]))'"
    script = f'eval "$({cli} sim env {state})" && env -0'
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run(["bash", "-c", script], env=base, capture_output=True, text=True, check=True)
    return dict(entry.split("=", 1) for entry in done.stdout.split("\0") if "=" in entry)
