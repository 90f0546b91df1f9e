"""Real nodes for the sandbox: the real kubelet and containerd, in private namespaces of this machine.

``dra-gpu sandbox up --kubelet real`` runs the supervisor in a private network and mount namespace (the
control plane listens on that namespace's loopback; :mod:`.forward` makes its API port reachable from the
host's loopback, so the kubeconfig works from the host's shell). Every node is a node agent
(:mod:`.node`) in a mount namespace of its own inside it: private ``/run``, ``/etc``, ``/var/lib``,
``/var/log``, ``/dev`` (with the node's simulated GPU device nodes) and ``/proc/driver``, shadowed sysctls,
and under them containerd, the kubelet and the driver's kubelet plugin. Nothing on the host changes; what
the node creates in the host's cgroup hierarchies lives under one ``dra-sandbox-<id>`` cgroup per sandbox,
removed by ``down`` (:mod:`.cleanup`).

Modules: host.py (can this host run real nodes; addresses), config.py (containerd, CNI and kubelet
configuration: pure), devices.py (device nodes and mig-minors), mounts.py (the node's private file
system), cgroups.py, cleanup.py, forward.py, node.py (the agent), helm_driver.py (``--driver helm``: the
project's chart and simulated-GPU image instead of the host-process plugin), images.py is ../images.py.
"""
