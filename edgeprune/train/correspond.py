"""Which student corresponds to which teacher, and which of the teacher's channels each student map keeps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.errors import InputError


@dataclass(frozen=True)
class FeaturePair:
    """A feature map of a pruned group: the student's tensor holds the teacher's channels ``positions``."""

    teacher: str
    student: str
    positions: object  # torch LongTensor of kept channel positions on axis 1 of the teacher's tensor


def check_correspondence(teacher, student) -> None:
    """Raise `InputError` unless ``student`` is a pruning of ``teacher``: the same inputs and outputs, and the
    same nodes in the same order (surgery and reconstruction change tensor sizes and weights, never nodes),
    or with whole residual blocks left out (depth pruning)."""
    hint = "give the original model the student was pruned from as --teacher"
    for kind, names, skip_batch in (("input", teacher.input_names, False), ("output", teacher.output_names, True)):
        theirs = student.input_names if kind == "input" else student.output_names
        if names != theirs:
            raise InputError(f"the student's {kind}s {list(theirs)} are not the teacher's {list(names)}; {hint}")
        for name in names:
            if not _same_static(teacher.shapes.get(name), student.shapes.get(name), skip_batch=skip_batch):
                raise InputError(
                    f"{kind} '{name}' has shape {student.shapes.get(name)} in the student and "
                    f"{teacher.shapes.get(name)} in the teacher: the student is not a pruning of it; {hint}"
                )
    t_nodes = [(n.name, n.op_type) for n in teacher.proto.graph.node]
    s_nodes = [(n.name, n.op_type) for n in student.proto.graph.node]
    if t_nodes != s_nodes and not _without_blocks(t_nodes, s_nodes):
        first = next((i for i, (a, b) in enumerate(zip(t_nodes, s_nodes)) if a != b), min(len(t_nodes), len(s_nodes)))
        raise InputError(
            f"the student is not a pruning of the teacher: their graphs differ at node {first} "
            f"({len(s_nodes)} nodes against {len(t_nodes)}); {hint}"
        )


def _without_blocks(teacher: list, student: list) -> bool:
    """Whether ``student`` is ``teacher`` with residual blocks removed (depth pruning): its nodes are the
    teacher's in the same order with some left out, and every block removed took its Add with it."""
    remaining = iter(teacher)
    if not all(node in remaining for node in student):  # an ordered subsequence
        return False
    dropped = set(teacher) - set(student)
    return any(op == "Add" for _, op in dropped)


def _same_static(a, b, skip_batch: bool) -> bool:
    if a is None or b is None:
        return a == b
    if len(a) != len(b):
        return False
    pairs = list(zip(a, b))[1:] if skip_batch else zip(a, b)
    return all(x == y for x, y in pairs if isinstance(x, int) and isinstance(y, int))


def feature_pairs(analysis, plan, student) -> tuple[FeaturePair, ...]:
    """One feature map per group the plan pruned: the last of the group's 4-D tensors both graphs hold."""
    import torch

    keep = analysis.keep_mask(plan.kept)
    pairs = []
    for group in analysis.prunable_groups:
        kept = plan.kept.get(group.id)
        if kept is None or len(kept) == group.channels:
            continue
        for name in reversed(group.tensors):
            channels = analysis.tensors.get(name)
            shape = student.shapes.get(name)
            if channels is None or channels.axis != 1 or shape is None or len(shape) != 4:
                continue
            positions = np.flatnonzero(keep[channels.classes])
            if isinstance(shape[1], int) and shape[1] != len(positions):
                continue
            pairs.append(FeaturePair(name, name, torch.from_numpy(positions.astype(np.int64))))
            break
    return tuple(pairs)
