"""Entry point of ``dra-gpu``: one sub-command per module; every error a user can cause is one line on stderr.

:func:`user_error` is the one place that maps exceptions to that line, with exit code 2: the project's exception
tree (``dra_driver.errors``, the sandbox's included), ``api``'s ``ConfigError``, a kubeconfig the Kubernetes client
cannot load, an API server it cannot reach, a YAML input that does not parse, and a missing, unreadable or wrong
kind of file that the command line names (or that lies under a directory it names). Any other exception is a bug
and keeps its traceback. Argument errors are one line too (exit 2). A closed stdout (``dra-gpu ... | head``)
ends the command quietly with 141 (128 + SIGPIPE, as a shell reports a process killed by it); Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import api.errors
from dra_driver import errors

EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# sub-command -> the module that declares it; only the one run is imported (``dra-gpu explain --controller``
# then starts without the Kubernetes client, the sandbox or the allocator)
COMMANDS = {
    "inventory": "cli.inventory_cmd",
    "slices": "cli.slices_cmd",
    "classes": "cli.slices_cmd",
    "sandbox": "cli.sandbox_cmd",
    "demo": "cli.sandbox_cmd",
    "sim": "cli.sim_cmd",
    "explain": "cli.explain_cmd",
    "plan": "cli.plan_cmd",
    "lint": "cli.lint_cmd",
    "webhook": "cli.webhook_cmd",
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at ``--help`` (sub-parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every sub-command, or only the one ``argv`` names (the others' modules are not imported)."""
    parser = Parser(prog="dra-gpu", description="Kubernetes DRA driver for NVIDIA GPUs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    first = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    wanted = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(name).register(sub)
    return parser


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class of a module if it is imported (if it is not, nothing raised one)."""
    found: ModuleType | None = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _named_paths(args: argparse.Namespace) -> Iterator[Path]:
    """Every path-like argument: ``Path`` values, and strings alone or in lists (lint's FILE...)."""
    for value in vars(args).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Path | str) and item not in ("", "-"):
                yield Path(item).absolute()


def _names_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    if not isinstance(exc.filename, str | bytes | os.PathLike):
        return False
    failed = Path(os.fsdecode(exc.filename)).absolute()
    return any(failed == named or named in failed.parents for named in _named_paths(args))


def _kubeconfig_hint(args: argparse.Namespace) -> str:
    given = getattr(args, "kubeconfig", None)
    if given is not None:
        return f"check the file given with --kubeconfig ({given})"
    return "pass --kubeconfig FILE or set KUBECONFIG"


def user_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line message for an error the user caused (or can fix), or None when ``exc`` is a bug."""
    kubeconfig = _loaded("kubernetes.config.config_exception", "ConfigException")
    http = _loaded("urllib3.exceptions", "HTTPError")
    bad_yaml = _loaded("yaml.error", "MarkedYAMLError")
    if isinstance(exc, api.errors.ConfigError):
        message = f"invalid input: {exc}"
    elif isinstance(exc, errors.DriverError):
        message = str(exc)
    elif kubeconfig is not None and isinstance(exc, kubeconfig):
        message = f"cannot load a kubeconfig: {exc}; {_kubeconfig_hint(args)}"
    elif http is not None and isinstance(exc, http):
        message = f"cannot reach the API server: {exc}"
    elif bad_yaml is not None and isinstance(exc, bad_yaml):
        message = f"not valid YAML: {exc}"
    elif isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError) and (
        _names_user_path(exc, args)
    ):
        message = f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    else:
        return None
    return " ".join(message.split())


def _command_name(args: argparse.Namespace) -> str:
    words = [getattr(args, attr, None) for attr in ("command", "op", "webhook_command")]
    return " ".join(["dra-gpu", *(w for w in words if isinstance(w, str))])


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail on the closed pipe again."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (captured by a test): nothing will flush to the pipe
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # user_error picks what a user caused; anything else propagates untouched
        message = user_error(exc, args)
        if message is None:
            raise
        print(f"{_command_name(args)}: {message}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
