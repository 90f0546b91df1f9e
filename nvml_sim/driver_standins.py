"""STAND-INS for the NVIDIA driver's programs in a simulated driver root: nvidia-smi, nvidia-cuda-mps-control,
nvidia-cuda-mps-server. Not NVIDIA's programs, and they reach no GPU.

``nvml_sim.driver_install`` copies this file, standard library only, to ``<driver root>/usr/bin/<program>``
with this interpreter as its ``#!``; the program is chosen by the name it is run as. Every invocation is
recorded as one JSON line ``{"program", "argv", "env", "stdin", "pid", "time"}`` (``env``: the CUDA/MPS
variables set; ``stdin``: the lines read, for the MPS control client) in ``$DRA_SIM_DRIVER_CALLS``, default
``<driver root>/../driver-calls.jsonl``, so tests can see exactly what the plugin ran.

What each program does is in docs/simulated-nvml.md ("The driver installation's programs").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STANDIN = "a stand-in of the dra-driver sandbox's simulated driver installation"
DRIVER_VERSION = "unknown"  # replaced by the installer with the simulated driver's version
# model key -> {"name": product name, "gi": {GPU instance profile ID: profile name}}; filled in by the installer
MODELS: dict[str, dict[str, object]] = {}
STATE_ENV = "DRA_SIM_NVML_STATE"
MINORS_PER_GPU, MINORS_PER_GI, FIRST_GPU_MINOR = 135, 9, 3  # the driver's nvidia-caps layout
CALLS_ENV = "DRA_SIM_DRIVER_CALLS"
RECORDED_ENV = ("CUDA_VISIBLE_DEVICES", "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")
PID_FILE = "nvidia-cuda-mps-control.pid"
SETTINGS_FILE = "stand-in-settings.json"
INTERVALS = ("DEFAULT", "SHORT", "MEDIUM", "LONG")
DAEMON_FLAG = "--stand-in-daemon"


def driver_root() -> Path:
    """The driver root this program is installed in (``<root>/usr/bin/<program>``)."""
    return Path(__file__).resolve().parent.parent.parent


def calls_log() -> Path:
    return Path(os.environ.get(CALLS_ENV) or driver_root().parent / "driver-calls.jsonl")


def smi_state() -> Path:
    return driver_root().parent / "nvidia-smi-state.json"


def record(program: str, argv: list[str], stdin: list[str] | None = None) -> None:
    entry: dict[str, object] = {
        "program": program,
        "argv": argv,
        "env": {k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
        "pid": os.getpid(),
        "time": time.time(),
    }
    if stdin is not None:
        entry["stdin"] = stdin
    path = calls_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def refuse(program: str, what: str) -> int:
    print(f"{program}: {STANDIN}; it cannot {what}. Use 'dra-gpu sim' for the simulated GPUs.", file=sys.stderr)
    return 1


# --- nvidia-smi ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    """Read-modify-write of a JSON file as ``nvml_sim.store`` does it: ``flock`` on ``<path>.lock``, re-read,
    write ``<path>.tmp.<pid>`` (stale ones removed) and rename; nothing written if the block raises."""
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        yield data
        for stale in path.parent.glob(path.name + ".tmp.*"):
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
        tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True))
        os.rename(tmp, path)


def compute_policy(args: list[str]) -> int:
    ids: list[str] = []
    listing = False
    timeslice: str | None = None
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-i", "--id") and rest:
            ids = [i for i in rest.pop(0).split(",") if i]
        elif arg in ("-l", "--list"):
            listing = True
        elif arg == "--set-timeslice" and rest:
            timeslice = rest.pop(0)
        elif arg.startswith("--set-timeslice="):
            timeslice = arg.split("=", 1)[1]
        else:
            print(f"nvidia-smi compute-policy: invalid argument {arg!r}", file=sys.stderr)
            return 2
    if not ids:
        return refuse("nvidia-smi", "apply compute policies to every GPU: give -i <GPU UUIDs or indices>")
    if timeslice not in (None, "0", "1", "2", "3"):
        print(f"Invalid timeslice value {timeslice!r}: 0=DEFAULT, 1=SHORT, 2=MEDIUM, 3=LONG", file=sys.stderr)
        return 2
    with _locked(smi_state()) as state:
        for i in ids if timeslice is not None else []:
            state[i] = int(str(timeslice))
            print(f"Set timeslice to {INTERVALS[state[i]]} for GPU {i}.")
    if listing:
        for i in ids:
            print(f"GPU {i}\n    Timeslice                         : {INTERVALS[state.get(i, 0)]}")
    return 0


def _mig_minors() -> dict[str, int]:
    try:
        text = Path("/proc/driver/nvidia-caps/mig-minors").read_text()
    except OSError:
        return {}
    return {w[0]: int(w[1]) for line in text.splitlines() if len(w := line.split()) == 2 and w[1].isdigit()}


def _cap(minors: dict[str, int], gpu_minor: int, gi: int, ci: int | None = None) -> Path:
    key = f"gpu{gpu_minor}/gi{gi}/access" if ci is None else f"gpu{gpu_minor}/gi{gi}/ci{ci}/access"
    base = FIRST_GPU_MINOR + gpu_minor * MINORS_PER_GPU + gi * MINORS_PER_GI
    default = base if ci is None else base + 1 + ci
    return Path(f"/dev/nvidia-caps/nvidia-cap{minors.get(key, default)}")


def _machine() -> dict[str, Any] | None:
    """The simulated machine's state (``None``, said as the real one says it has no driver, when unreadable)."""
    try:
        state = json.loads(Path(os.environ[STATE_ENV]).read_text())
    except (KeyError, OSError, ValueError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("gpus"), list):
        print(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            f"({STANDIN}: {STATE_ENV} names no readable simulated machine)"
        )
        return None
    return state


def list_gpus() -> int:
    """``nvidia-smi -L``: the simulated machine's GPUs and MIG devices whose device nodes this process sees."""
    state = _machine()
    if state is None:
        return 9
    minors = _mig_minors()
    shown = 0
    for gpu in state["gpus"]:
        if not os.path.exists(f"/dev/nvidia{gpu['minor']}"):
            continue
        model = MODELS.get(gpu["model"], {})
        print(f"GPU {shown}: {model.get('name', gpu['model'])} (UUID: {gpu['uuid']})")
        shown += 1
        profiles = model.get("gi", {})
        assert isinstance(profiles, dict)
        mig = 0
        for gi in gpu.get("gpuInstances", []):
            for ci in gi.get("computeInstances", []):
                caps = (_cap(minors, gpu["minor"], gi["id"]), _cap(minors, gpu["minor"], gi["id"], ci["id"]))
                if all(c.exists() for c in caps):
                    name = profiles.get(str(gi["profileId"]), f"profile {gi['profileId']}")
                    print(f"  MIG {name:<11} Device {mig:>2}: (UUID: {ci['uuid']})")
                    mig += 1
    if shown == 0:
        print("No devices were found")
        return 6
    return 0


def _bus_id(gpu: dict[str, Any]) -> str:
    return f"00000000:{gpu['pciBus']:02X}:00.0"


def reset_gpu(gpu: dict[str, Any]) -> None:
    """What a GPU reset does to the state file's GPU: exactly ``nvml_sim.machine.reset_gpu`` (tested equal)."""
    gpu["mig"]["current"] = gpu["mig"]["pending"]
    gpu["gpuInstances"] = []
    gpu["computeMode"] = 0
    if "ecc" in gpu:
        gpu["ecc"]["volatile"] = [0, 0]
    if gpu["fault"] == "lost":
        gpu["fault"] = None


def gpu_reset(args: list[str]) -> int:
    """``nvidia-smi -r [-i <ids>]``: a read-modify-write of the state file under its lock, as nvml_sim.store does."""
    if args and (len(args) != 2 or args[0] not in ("-i", "--id")):
        print(f"nvidia-smi --gpu-reset: invalid arguments {args} (it takes -i <ids>)", file=sys.stderr)
        return 2
    ids = [i.strip().lower() for i in args[1].split(",") if i.strip()] if args else None
    machine = _machine()
    if machine is None:
        return 9
    names = {n.lower(): g["index"] for g in machine["gpus"] for n in (str(g["index"]), g["uuid"], _bus_id(g))}
    unknown = [i for i in ids or [] if i not in names]
    if unknown or ids == []:
        print("No devices were found")
        print(f"{STANDIN}: no GPU {', '.join(unknown) or '(empty -i)'} on this simulated machine", file=sys.stderr)
        return 6
    chosen = {names[i] for i in ids} if ids is not None else {g["index"] for g in machine["gpus"]}
    with _locked(Path(os.environ[STATE_ENV])) as state:  # the machine's GPU list never changes
        targets = [g for g in state["gpus"] if g["index"] in chosen]
        for gpu in targets:
            reset_gpu(gpu)
    for gpu in targets:
        print(f"GPU {_bus_id(gpu)} was successfully reset.")
    print("All done.")
    return 0


def nvidia_smi(args: list[str]) -> int:
    record("nvidia-smi", args)
    if args[:1] in (["--version"], ["-V"]):
        print(f"nvidia-smi: {STANDIN}, driver version {DRIVER_VERSION}")
        return 0
    if args in (["-L"], ["--list-gpus"]):
        return list_gpus()
    if args[:1] == ["compute-policy"]:
        return compute_policy(args[1:])
    if "-r" in args or "--gpu-reset" in args:
        return gpu_reset([a for a in args if a not in ("-r", "--gpu-reset")])
    return refuse("nvidia-smi", f"do {' '.join(args) or 'a GPU summary'}")


# --- nvidia-cuda-mps-control ---------------------------------------------------------------------------


def _pipe() -> Path:
    return Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps")


def _log_dir() -> Path:
    return Path(os.environ.get("CUDA_MPS_LOG_DIRECTORY") or "/var/log/nvidia-mps")


def _daemon_pid(pipe: Path) -> int | None:
    try:
        pid = int((pipe / PID_FILE).read_text())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return None if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X") else pid


def _log(line: str) -> None:
    with open(_log_dir() / "control.log", "a") as f:
        f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')} Control {os.getpid()}] {line}\n")


def daemon() -> int:
    """The stand-in control daemon: a PID file, a log line, then nothing until it is told to go."""
    pipe = _pipe()
    pid_file = pipe / PID_FILE
    tmp = pipe / f".{PID_FILE}.{os.getpid()}"
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(pid_file)
    _log(f"Starting control daemon (stand-in) for CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}")

    def leave(*_: object) -> None:
        _log("Exit")
        try:
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    while True:
        time.sleep(0.2)
        try:
            if pid_file.read_text().strip() != str(os.getpid()):
                leave()
        except OSError:
            leave()


def start_daemon() -> int:
    pipe = _pipe()
    if _daemon_pid(pipe) is not None:
        print("An instance of this daemon is already running", file=sys.stderr)
        return 1
    pipe.mkdir(parents=True, exist_ok=True)
    _log_dir().mkdir(parents=True, exist_ok=True)
    subprocess.Popen(
        [sys.executable, __file__, DAEMON_FLAG],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    deadline = time.monotonic() + 10
    while _daemon_pid(pipe) is None:
        if time.monotonic() > deadline:
            print("the stand-in daemon did not start", file=sys.stderr)
            return 1
        time.sleep(0.02)
    return 0


def client(lines: list[str]) -> int:
    pipe = _pipe()
    pid = _daemon_pid(pipe)
    if pid is None:
        print("Cannot find MPS control daemon process", file=sys.stderr)
        return 1
    settings_file = pipe / SETTINGS_FILE
    settings: dict[str, str] = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _daemon_pid(pipe) == pid and time.monotonic() < deadline:
                time.sleep(0.02)
            settings_file.unlink(missing_ok=True)
            return 0
        if words[0] == "set_default_active_thread_percentage" and len(words) == 2:
            settings["active_thread_percentage"] = words[1]
        elif words[0] == "set_default_device_pinned_mem_limit" and len(words) == 3:
            settings[f"pinned_mem_limit {words[1]}"] = words[2]
        elif words[0] == "get_default_active_thread_percentage":
            print(settings.get("active_thread_percentage", "100.0"))
        elif words[0] == "get_default_device_pinned_mem_limit" and len(words) == 2:
            print(settings.get(f"pinned_mem_limit {words[1]}", "0M"))
        elif words[0] == "get_server_list":
            pass
        else:
            print(f"Unrecognized command: {line}")
        _log(f"Cmd:{line}")
    settings_file.write_text(json.dumps(settings, sort_keys=True))
    return 0


def mps_control(args: list[str]) -> int:
    if args == [DAEMON_FLAG]:
        return daemon()
    if args == ["-d"]:
        record("nvidia-cuda-mps-control", args)
        return start_daemon()
    if args:
        record("nvidia-cuda-mps-control", args)
        return refuse("nvidia-cuda-mps-control", f"do {' '.join(args)} (it takes -d, or commands on stdin)")
    lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    record("nvidia-cuda-mps-control", args, lines)
    return client(lines)


def main() -> int:
    program = Path(sys.argv[0]).name
    args = sys.argv[1:]
    if program == "nvidia-smi":
        return nvidia_smi(args)
    if program == "nvidia-cuda-mps-control":
        return mps_control(args)
    record(program, args)
    if args[:1] in (["--version"], ["-V"]):
        print(f"{program}: {STANDIN}, driver version {DRIVER_VERSION}")
        return 0
    return refuse(program, f"do {' '.join(args) or 'that'}")


if __name__ == "__main__":
    sys.exit(main())
