"""Run one simulated kubelet until SIGTERM: ``python -m sandbox.kubelet --node N --root DIR --kubeconfig K``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dra_driver.k8s import Kube
from dra_driver.termination import Termination
from sandbox.kubelet.kubelet import SimulatedKubelet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node", required=True)
    parser.add_argument("--root", required=True, type=Path, help="holds plugins_registry/ and plugins/")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--slice-grace", type=float, default=30.0, help="seconds before slices of a gone plugin go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s kubelet[{args.node}] %(levelname)s %(message)s")
    kubelet = SimulatedKubelet(
        Kube.from_kubeconfig(args.kubeconfig), args.node, args.root, slice_grace_s=args.slice_grace
    )
    stop = Termination().install()
    kubelet.start()
    stop.wait()
    kubelet.stop()


if __name__ == "__main__":
    main()
