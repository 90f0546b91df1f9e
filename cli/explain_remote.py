"""``dra-gpu explain --controller URL``: the question sent to the mode controller's explain listener, which
answers it from its watch cache and its parsed slices (``controller.explainer``); the answer is printed as
it comes. Reach the listener with ``kubectl port-forward`` (it listens on the pod's loopback only)."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request

from dra_driver.errors import FatalError

TIMEOUT_S = 120.0  # a controller that has just started waits for its cache before it answers


def url_of(args: argparse.Namespace) -> str:
    base = str(args.controller).rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FatalError(f"--controller: {args.controller!r} is not an http(s) URL such as http://127.0.0.1:8081")
    for flag, given in (("-f", args.filename), ("--policy", args.policy), ("--now", args.now)):
        if given:
            raise FatalError(
                f"--controller cannot be combined with {flag}: the controller answers from the cluster it "
                "watches, with its own policy, at its own time"
            )
    quote = urllib.parse.quote
    path = f"/explain/{args.kind}/{quote(args.namespace, safe='')}/{quote(args.name, safe='')}"
    return f"{base}{path}?{urllib.parse.urlencode({'output': args.output})}"


def print_answer(args: argparse.Namespace) -> int:
    sys.stdout.write(ask(args))
    return 0


def ask(args: argparse.Namespace) -> str:
    url = url_of(args)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise FatalError(f"the controller at {args.controller} answered {exc.code}: {body}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FatalError(
            f"--controller {args.controller}: cannot reach it ({reason}); its explain listener is on the "
            "controller pod's loopback, port 8081 by default: kubectl port-forward -n NAMESPACE "
            "deployment/RELEASE-controller 8081"
        ) from exc
