"""``dra-gpu explain``: the objects read from the API server (or YAML files with ``-f``) and analysed here
(``controller.explain.analysis``). With ``--controller`` the mode controller answers instead
(``cli.explain_remote``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from cli import explain_files
from controller.explain.analysis import Source, answer, collector_off, read_inputs
from controller.planner import load_policy
from controller.planner.world import timestamp
from dra_driver.errors import FatalError
from dra_driver.k8s import Kube
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.probe import probe


def run(args: argparse.Namespace) -> int:
    """Entry point of ``dra-gpu explain`` (``cli.explain_cmd`` declares the arguments)."""
    kube: Source
    if args.filename:
        caps = replace(Capabilities(), partitionable_devices=not args.no_partitionable_devices)
        kube, now = explain_files.load(args.filename, args.driver, caps), time.time()
        if args.now:
            now = timestamp(args.now)
            if not now:
                raise FatalError(f"--now: {args.now!r} is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
    else:
        live = Kube.from_kubeconfig(args.kubeconfig)
        kube, caps, now = live, probe(live), time.time()
    policy = load_policy(args.policy.read_text()) if args.policy else None
    with collector_off():  # from the reads on: decoding 1000 MIG nodes' slices is millions of objects too
        inputs = read_inputs(kube, args.kind, args.name, args.namespace)
        sys.stdout.write(answer(inputs, policy, caps, args.driver, now, args.output))
    return 0
