"""``dra-gpu webhook serve | register | manifest | unregister``: the shell around the server and the registration.

``serve`` runs until SIGTERM or SIGINT, then stops accepting and finishes the reviews in flight.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.webhook.registration import (
    namespace_only,
    register,
    service_client_config,
    unregister,
    url_client_config,
    webhook_configuration,
)
from controller.webhook.server import WebhookServer
from controller.webhook.tls import LOOPBACK_NAMES, ServerContexts, TlsFiles, self_signed
from dra_driver.errors import ConfigError
from dra_driver.k8s import Kube
from dra_driver.termination import Termination

log = logging.getLogger("dra_driver.webhook")
CA_INJECTION = "cert-manager.io/inject-ca-from"


@dataclass(frozen=True)
class ServeArgs:
    driver: str
    address: str = "0.0.0.0"
    port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    self_signed_dir: Path | None = None
    hosts: tuple[str, ...] = LOOPBACK_NAMES  # names of the self-signed certificate


def tls_files(args: ServeArgs) -> TlsFiles:
    if args.self_signed_dir is not None:
        if args.tls_cert or args.tls_key:
            raise ConfigError("--self-signed-dir", "give --self-signed-dir or --tls-cert/--tls-key, not both")
        files = self_signed(args.self_signed_dir, args.hosts)
        log.info(
            "self-signed certificate for %s in %s; caBundle: %s", ", ".join(args.hosts), args.self_signed_dir, files.ca
        )
        return files
    if args.tls_cert is None or args.tls_key is None:
        raise ConfigError("--tls-cert", "give --tls-cert and --tls-key (or --self-signed-dir DIR)")
    return TlsFiles(args.tls_cert, args.tls_key)


def serve(args: ServeArgs, on_ready: Callable[[WebhookServer], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (when called from the main thread); 0 after a clean shutdown."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    server = WebhookServer(ServerContexts(tls_files(args)), args.driver, args.address, args.port)

    def on_signal(signum: int) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)

    with Termination(on_signal) as stop:
        try:
            server.start()
            if on_ready is not None:
                on_ready(server)
            stop.wait()
        finally:
            server.shutdown()
    return 0


@dataclass(frozen=True)
class RegisterArgs:
    kubeconfig: Path | None
    name: str
    url: str | None = None
    service: str | None = None  # NAMESPACE/NAME
    service_port: int = 443
    ca_file: Path | None = None
    namespace: str | None = None  # only claims in this namespace go through the webhook
    cert_manager: str | None = None  # NAMESPACE/CERTIFICATE whose CA cert-manager injects as caBundle


def configuration(args: RegisterArgs) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration the arguments describe."""
    ca = args.ca_file.read_bytes() if args.ca_file else None
    if args.url:
        if ca is None:
            raise ConfigError("--ca-file", "a webhook reached by --url needs the CA that signed its certificate")
        client = url_client_config(args.url, ca)
    elif args.service and "/" in args.service:
        namespace, service = args.service.split("/", 1)
        client = service_client_config(namespace, service, args.service_port, ca)
    else:
        raise ConfigError("--url", "give --url URL --ca-file CA, or --service NAMESPACE/NAME")
    selector = namespace_only(args.namespace) if args.namespace else None
    out = webhook_configuration(client, name=args.name, namespace_selector=selector)
    if args.cert_manager:
        out["metadata"]["annotations"] = {CA_INJECTION: args.cert_manager}
    return out


def run_manifest(args: RegisterArgs) -> int:
    sys.stdout.write(yaml.safe_dump(configuration(args), sort_keys=False))
    return 0


def run_register(args: RegisterArgs) -> int:
    register(Kube.from_kubeconfig(args.kubeconfig), configuration(args))
    print(f"ValidatingWebhookConfiguration {args.name} registered")
    return 0


def run_unregister(kubeconfig: Path | None, name: str) -> int:
    gone = unregister(Kube.from_kubeconfig(kubeconfig), name)
    print(f"ValidatingWebhookConfiguration {name} {'deleted' if gone else 'was not there'}")
    return 0
