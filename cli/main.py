"""Entry point of ``dra-gpu``: one sub-command per module, errors printed as one actionable line."""

from __future__ import annotations

import argparse
import sys

import api.errors
from cli import explain_cmd, inventory_cmd, lint_cmd, sandbox_cmd, sim_cmd, slices_cmd, webhook_cmd
from dra_driver import errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dra-gpu", description="Kubernetes DRA driver for NVIDIA GPUs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (inventory_cmd, slices_cmd, sandbox_cmd, sim_cmd, explain_cmd, lint_cmd, webhook_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except api.errors.ConfigError as exc:
        print(f"dra-gpu {args.command}: invalid input: {exc}", file=sys.stderr)
        return 2
    except errors.DriverError as exc:
        print(f"dra-gpu {args.command}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
