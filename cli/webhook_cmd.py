"""``dra-gpu webhook serve | register | manifest | unregister``: the admission webhook for this driver's opaque configs.

Only argument parsing lives here; the work is done by ``controller.webhook.command``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from controller.webhook import command, registration
from controller.webhook.main import add_serve_arguments, serve_args

DEFAULT_NAME = registration.DEFAULT_NAME


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("webhook", help="admission webhook that validates this driver's opaque configs")
    commands = p.add_subparsers(dest="webhook_command", required=True, metavar="SUBCOMMAND")

    s = commands.add_parser("serve", help="serve /validate and /healthz over HTTPS until SIGTERM")
    add_serve_arguments(s)
    s.set_defaults(func=run_serve)

    for name, func, text in (
        ("register", run_register, "create or replace the ValidatingWebhookConfiguration"),
        ("manifest", run_manifest, "print the ValidatingWebhookConfiguration as YAML (for kubectl apply)"),
    ):
        r = commands.add_parser(name, help=text)
        r.add_argument("--kubeconfig", type=Path)
        r.add_argument("--name", default=DEFAULT_NAME, help=f"configuration name (default {DEFAULT_NAME})")
        r.add_argument("--url", help="webhook URL, e.g. https://127.0.0.1:8443/validate (needs --ca-file)")
        r.add_argument("--service", metavar="NAMESPACE/NAME", help="webhook behind this Service (path /validate)")
        r.add_argument("--service-port", type=int, default=443)
        r.add_argument("--ca-file", type=Path, help="PEM of the CA that signed the webhook's certificate (caBundle)")
        r.add_argument("--namespace", help="only validate claims in this namespace (a namespaceSelector)")
        r.add_argument(
            "--cert-manager", metavar="NAMESPACE/CERTIFICATE", help="let cert-manager inject this Certificate's CA"
        )
        r.set_defaults(func=func)

    u = commands.add_parser("unregister", help="delete the ValidatingWebhookConfiguration")
    u.add_argument("--kubeconfig", type=Path)
    u.add_argument("--name", default=DEFAULT_NAME)
    u.set_defaults(func=run_unregister)


def run_serve(args: argparse.Namespace) -> int:
    return command.serve(serve_args(args))


def _register_args(args: argparse.Namespace) -> command.RegisterArgs:
    return command.RegisterArgs(
        kubeconfig=args.kubeconfig,
        name=args.name,
        url=args.url,
        service=args.service,
        service_port=args.service_port,
        ca_file=args.ca_file,
        namespace=args.namespace,
        cert_manager=args.cert_manager,
    )


def run_register(args: argparse.Namespace) -> int:
    return command.run_register(_register_args(args))


def run_manifest(args: argparse.Namespace) -> int:
    return command.run_manifest(_register_args(args))


def run_unregister(args: argparse.Namespace) -> int:
    return command.run_unregister(args.kubeconfig, args.name)
