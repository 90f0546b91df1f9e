"""The simulated kubelet's plugin watcher retries a registration that failed, as the kubelet's plugin manager
does (a plugin stopped or slow when its socket appeared registers once it answers)."""

from __future__ import annotations

from pathlib import Path

from e2e.testplugin import TestPlugin
from e2e.wait import until
from sandbox.kubelet.plugins import PluginWatcher


def test_a_plugin_whose_first_get_info_calls_fail_is_registered_on_a_retry(tmp_path: Path) -> None:
    registry, plugins = tmp_path / "registry", tmp_path / "plugins"
    plugin = TestPlugin("retry.example.com", registry, plugins, refuse_get_info=2).start()
    watcher = PluginWatcher(registry, poll_s=0.05)
    watcher.start()
    try:
        registered = until(lambda: watcher.plugin("retry.example.com"), "registration after the refusals", timeout=20)
        assert plugin.get_info_calls == 3  # two refused, then registered; not tried again once registered
        assert plugin.calls.registered == [True]
        assert registered.endpoint == str(plugin.dra_socket)
    finally:
        watcher.stop()
        plugin.stop()
