"""The controller's planner: which idle GPUs to re-partition for the claims that wait. Pure (no I/O).

``decide(World, Policy, now) -> Decision``; see ``decide`` for the algorithm and docs/controller.md.
"""

from controller.planner.decide import decide
from controller.planner.decision import Change, Decision, Unhelped, Why
from controller.planner.policy import Policy, load_policy, parse_policy
from controller.planner.world import World

__all__ = ["Change", "Decision", "Policy", "Unhelped", "Why", "World", "decide", "load_policy", "parse_policy"]
