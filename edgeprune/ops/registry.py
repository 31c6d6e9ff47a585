"""The one table of per-op channel semantics: how an op maps channel positions, and how surgery edits it.

A rule's ``propagate`` reads its inputs' channel tracks from the analysis context and declares its
outputs' tracks, couplings, reductions and the constant axes that follow pruned channels. Its
``rewrite`` fixes what generic constant slicing cannot (split sizes, slice bounds, reshape targets...).
An op with no rule freezes every group it touches: nothing is ever pruned on a guess.
"""

from __future__ import annotations

from collections.abc import Callable

OP_RULES: dict[str, OpRule] = {}


class OpRule:
    """Default rule: the op is known but has nothing to rewrite."""

    def propagate(self, node, ctx) -> None:
        raise NotImplementedError

    def rewrite(self, node, sctx) -> None:
        return None


def op_rule(*op_types: str) -> Callable[[type[OpRule]], type[OpRule]]:
    def register(cls: type[OpRule]) -> type[OpRule]:
        instance = cls()
        for op_type in op_types:
            if op_type in OP_RULES:
                raise ValueError(f"two channel rules for {op_type}")
            OP_RULES[op_type] = instance
        return cls

    return register


def rule_for(op_type: str, domain: str = "") -> OpRule | None:
    if domain not in ("", "ai.onnx"):
        return None
    _load_rules()
    return OP_RULES.get(op_type)


def known_ops() -> tuple[str, ...]:
    _load_rules()
    return tuple(sorted(OP_RULES))


def _load_rules() -> None:
    # importing the rule modules registers them; done lazily so the registry has no import cycle
    from edgeprune.ops import conv, elementwise, layout, linear, norm, pooling, reshape  # noqa: F401
