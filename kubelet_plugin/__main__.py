"""``python -m kubelet_plugin``: run the DRA kubelet plugin (see kubelet_plugin/plugin.py)."""

from kubelet_plugin.plugin import main

main()
