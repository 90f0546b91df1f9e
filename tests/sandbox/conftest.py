"""The sandbox fixtures come from the package so other test suites (e2e) can use the same ones."""

from e2e.fixtures import sandbox, sandbox_nodes, sandbox_profile  # noqa: F401
