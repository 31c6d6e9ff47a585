"""Surgery: remove the channels a plan drops, really, from a copy of the graph."""

from __future__ import annotations

import numpy as np
import onnx

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.errors import InputError, VerificationError
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.ops.registry import rule_for
from edgeprune.surgery.context import SurgeryContext
from edgeprune.surgery.plan import PruningPlan, validate_plan


def apply_plan(model: ModelGraph, analysis: ChannelAnalysis, plan: PruningPlan, *, stage_keep: int = 0) -> ModelGraph:
    """A new model without the plan's dropped channels and removed blocks; ``model`` is left untouched.

    Constants are sliced by the declarative slice specs of the analysis; then each op rule fixes what
    slicing cannot (split sizes, slice bounds, reshape targets, group counts). Then the removed residual
    blocks are bypassed (`surgery.depth`; ``stage_keep``: the stage guard, 0 for none). The result is
    shape-inferred again and must pass the full ONNX checker.
    """
    from edgeprune.surgery.depth import bypass_graph, channel_kept, inside_groups, plan_blocks

    _, removed = plan_blocks(model, analysis, plan, stage_keep)
    validate_plan(plan, analysis, inside_groups(removed))
    keep = analysis.keep_mask(channel_kept(plan.kept, removed))
    _check_no_tensor_emptied(analysis, keep)
    graph = model.gs_graph()
    nodes = {node.name: node for node in graph.nodes}
    sctx = SurgeryContext(analysis, keep, model.shapes, model.opset)
    for spec in analysis.slices:
        node = nodes[spec.node]
        kept = sctx.kept(_tensor(node, spec.tensor))
        values = sctx.constant(node.inputs[spec.input_index])
        if kept is None or values is None or values.shape[spec.axis] != len(kept):
            continue  # nothing removed, or a grouped conv's per-group axis (its rule handles it)
        sctx.set_constant(node, spec.input_index, np.compress(kept, values, axis=spec.axis))
    for node in graph.nodes:
        rule = rule_for(node.op, node.domain or "")
        if rule is not None:
            rule.rewrite(node, sctx)
    bypass_graph(graph, removed)
    proto = export_clean(graph)
    proto.producer_name, proto.producer_version = model.proto.producer_name, model.proto.producer_version
    try:
        pruned = ModelGraph.from_proto(proto, source_sha256=model.source_sha256, notes=model.notes)
        onnx.checker.check_model(pruned.proto, full_check=True)
    except Exception as exc:
        raise VerificationError(f"the pruned model is not valid ONNX: {str(exc).splitlines()[0]}") from exc
    return pruned


def _tensor(node, name: str):
    for tensor in list(node.inputs) + list(node.outputs):
        if tensor.name == name:
            return tensor
    raise KeyError(name)


def _check_no_tensor_emptied(analysis: ChannelAnalysis, keep: np.ndarray) -> None:
    for name, channels in analysis.tensors.items():
        if len(channels.classes) and not keep[channels.classes].any():
            raise InputError(
                f"the plan removes every channel of tensor {name} (a slice or split of a group); "
                "keep at least one of its channels"
            )
