"""The per-op channel-semantics table (see `registry`)."""

from edgeprune.ops.registry import OP_RULES, OpRule, known_ops, op_rule, rule_for

__all__ = ["OP_RULES", "OpRule", "known_ops", "op_rule", "rule_for"]
