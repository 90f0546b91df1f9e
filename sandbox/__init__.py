"""A local cluster for development and tests, without Docker: real etcd, kube-apiserver, kube-scheduler and
kube-controller-manager as child processes on 127.0.0.1, plus simulated Nodes.

Modules, bottom up:

* ``versions``      pinned Kubernetes and etcd versions
* ``binaries``      locate the binaries at those versions; ``gobuild`` builds missing ones into the cache
* ``pki``           CA, serving/client certificates, service-account keys; ``kubeconfig`` writes kubeconfigs
* ``featuregates``  DRA feature gates decided from what the binaries accept
* ``flags``         the components' command lines (pure)
* ``processes``     children that die with their parent; ``ports``, ``health``, ``atomic``, ``layout`` helpers
* ``controlplane``  start / readiness / stop of the four processes
* ``nodes``         simulated Node objects with Lease and Ready heartbeats
* ``agents``        per node: the simulated kubelet (``kubelet/``) and the GPU plugin on a simulated machine
* ``nodestate``     node state (simulated GPUs, checkpoints, CDI specs): kept only for its own profile
* ``classes``       the shipped DeviceClasses, installed by ``up``
* ``status``        the status document; ``supervisor`` the detached process that owns a sandbox
* ``commands``      ``dra-gpu sandbox up|down|status|kubeconfig`` as plain functions

See docs/sandbox.md.
"""
