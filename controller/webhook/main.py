"""``python -m controller.webhook``: the webhook's production entry point (the image has no ``dra-gpu`` CLI).

The ``serve`` arguments are declared here once; ``dra-gpu webhook serve`` reuses them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from api.names import DEFAULT_DRIVER_NAME
from controller.webhook.command import ServeArgs, serve
from controller.webhook.tls import LOOPBACK_NAMES


def add_serve_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--address", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    s.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443; 0 picks a free one)")
    s.add_argument("--tls-cert", type=Path, help="serving certificate (PEM); reloaded when the file changes")
    s.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    s.add_argument(
        "--self-signed-dir",
        type=Path,
        metavar="DIR",
        help="generate a CA and a serving certificate into DIR (ca.crt is the caBundle), instead of --tls-*",
    )
    s.add_argument(
        "--host",
        action="append",
        default=[],
        help="with --self-signed-dir: a name or IP the certificate is for (repeatable; default 127.0.0.1, localhost)",
    )
    s.add_argument("--driver", default=DEFAULT_DRIVER_NAME)


def serve_args(args: argparse.Namespace) -> ServeArgs:
    return ServeArgs(
        driver=args.driver,
        address=args.address,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        self_signed_dir=args.self_signed_dir,
        hosts=tuple(args.host) or LOOPBACK_NAMES,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.webhook",
        description="serve the admission webhook for this driver's opaque configs (/validate, /healthz) over HTTPS",
    )
    add_serve_arguments(parser)
    return serve(serve_args(parser.parse_args(argv)))
