"""Admission webhook for this driver's opaque configs in ResourceClaims and ResourceClaimTemplates.

- ``review``: AdmissionReview v1 → decision, with the validator shared with the linter and the plugin (pure);
- ``server``: HTTPS server, ``/validate`` and ``/healthz``, explicit start / shutdown;
- ``tls``: certificate files (reloaded when they change) or a generated CA + serving certificate;
- ``registration``: the ValidatingWebhookConfiguration, registered and removed through the API server;
- ``command``: ``dra-gpu webhook serve | register | unregister``.

See docs/webhook.md.
"""

from controller.webhook.registration import (
    DEFAULT_NAME,
    namespace_only,
    register,
    service_client_config,
    unregister,
    url_client_config,
    webhook_configuration,
)
from controller.webhook.review import BadReview, Decision, decide, object_errors
from controller.webhook.server import WebhookServer
from controller.webhook.tls import ServerContexts, TlsFiles, self_signed

__all__ = [
    "DEFAULT_NAME",
    "BadReview",
    "Decision",
    "ServerContexts",
    "TlsFiles",
    "WebhookServer",
    "decide",
    "namespace_only",
    "object_errors",
    "register",
    "self_signed",
    "service_client_config",
    "unregister",
    "url_client_config",
    "webhook_configuration",
]
