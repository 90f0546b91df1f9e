"""``python -m kubelet_plugin``: run the DRA kubelet plugin (kubelet_plugin/starting.py, then plugin.py)."""

from kubelet_plugin.starting import main

main()
