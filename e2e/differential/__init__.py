"""Differential testing of ``dra_driver.structured`` against the sandbox's real kube-scheduler.

``scenarios`` generates nodes, already-allocated claims and new claims from a seed; ``sandbox_run`` plays one
scenario against the sandbox and asks our allocator the same question; ``checker`` validates an allocation
with rules written independently of the allocator. ``e2e/sandbox/test_differential.py`` runs it all.
"""
