"""The reconciler is tested against a real API server: the sandbox fixtures come from the e2e package."""

from e2e.fixtures import sandbox, sandbox_nodes, sandbox_profile  # noqa: F401
