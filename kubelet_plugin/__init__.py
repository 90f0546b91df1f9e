"""kubelet_plugin."""
