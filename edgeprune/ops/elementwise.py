"""Channel-wise ops: activations, casts, and broadcasting arithmetic that couples feature maps."""

from __future__ import annotations

from edgeprune.ops.common import Unsupported, passthrough, rank_of
from edgeprune.ops.registry import OpRule, op_rule

UNARY_OPS = (
    "Relu",
    "LeakyRelu",
    "Clip",
    "HardSwish",
    "HardSigmoid",
    "Sigmoid",
    "Tanh",
    "Gelu",
    "Elu",
    "Selu",
    "Celu",
    "Softplus",
    "Softsign",
    "Mish",
    "ThresholdedRelu",
    "Identity",
    "Dropout",
    "Cast",
    "Neg",
    "Abs",
    "Exp",
    "Log",
    "Sqrt",
    "Reciprocal",
    "Erf",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
)
BROADCAST_OPS = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu")


@op_rule(*UNARY_OPS)
class UnaryRule(OpRule):
    """Each output channel depends on the same input channel only."""

    def propagate(self, node, ctx) -> None:
        passthrough(node, ctx)


@op_rule(*BROADCAST_OPS)
class BroadcastRule(OpRule):
    """Numpy-style broadcasting between feature maps and constants.

    Feature maps whose channels meet here are coupled position by position (a residual Add, the Mul of
    a squeeze-excitation scale). A constant with one value per channel is sliced with them; a scalar or
    a constant that is 1 along the channel axis broadcasts and stays. A one-channel map broadcast over
    many channels is frozen: its single channel cannot be removed.
    """

    def propagate(self, node, ctx) -> None:
        out = node.outputs[0]
        rank = max(rank_of(t, ctx) for t in node.inputs)
        tracked = [(i, t, ctx.track(t)) for i, t in enumerate(node.inputs) if ctx.track(t) is not None]
        if not tracked:
            return
        axes = {track.axis + rank - rank_of(t, ctx) for _, t, track in tracked}
        if len(axes) != 1:
            raise Unsupported("its operands' channel axes do not line up")
        axis = axes.pop()
        width = max(len(track.ids) for _, _, track in tracked)
        broadcast_single = [(t, tr) for _, t, tr in tracked if len(tr.ids) == 1 and width > 1]
        lanes = [(i, t, tr) for i, t, tr in tracked if len(tr.ids) == width]
        if len(lanes) + len(broadcast_single) != len(tracked):
            raise Unsupported("its operands have different channel counts")
        constant_slices = self._check_others(node, ctx, rank, axis, width, {i for i, _, _ in tracked})
        for _, track in broadcast_single:
            ctx.freeze(track.ids, node, "a single channel is broadcast over many channels here")
        first = lanes[0][2]
        for _, _, track in lanes[1:]:
            ctx.couple(first.ids, track.ids)
        ctx.set_track(out, axis, first.ids)
        for index, const_axis in constant_slices:
            ctx.slice_with(node, index, const_axis, out)

    @staticmethod
    def _check_others(node, ctx, rank, axis, width, tracked_indices) -> list[tuple[int, int]]:
        slices = []
        for index, tensor in enumerate(node.inputs):
            if index in tracked_indices:
                continue
            values = ctx.constant(tensor)
            shape = values.shape if values is not None else ctx.shape(tensor)
            if shape is None:
                raise Unsupported(f"the shape of its operand {tensor.name} is unknown")
            own_axis = axis - (rank - len(shape))
            extent = shape[own_axis] if 0 <= own_axis < len(shape) else 1
            if extent == 1:
                continue
            if values is None:
                raise Unsupported(f"its operand {tensor.name} has channels that are not tracked")
            if extent != width:
                raise Unsupported(f"its constant {tensor.name} does not match the channel count")
            slices.append((index, own_axis))
        return slices
