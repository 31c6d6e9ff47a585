"""Loading an ONNX file into a normalised `ModelGraph`, with one clear error per kind of bad input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx

from edgeprune.errors import InputError
from edgeprune.graph.io import sha256_file
from edgeprune.graph.model import MAX_IR_VERSION, ModelGraph
from edgeprune.graph.normalize import fold_graph, rewrite_graph

logger = logging.getLogger(__name__)

_MAX_FOLD_ROUNDS = 8


def read_model_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse and check an ONNX file, external data included; raise InputError saying what is wrong."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"model file not found: {source}; check the path")
    if source.is_dir():
        raise InputError(f"{source} is a directory, not an ONNX file; pass the path of the .onnx file")
    try:
        proto = onnx.load(str(source), load_external_data=False)
    except Exception as exc:
        raise InputError(
            f"{source} is not a readable ONNX model ({_first_line(exc)}); "
            "check that the file is a complete .onnx export and not truncated"
        ) from exc
    if not proto.graph.node or not proto.graph.output:
        raise InputError(
            f"{source} holds no ONNX graph (no nodes or no outputs); it is empty, truncated or not an ONNX model"
        )
    try:
        onnx.load_external_data_for_model(proto, str(source.parent))
    except Exception as exc:  # onnx raises OSError or a checker ValidationError, depending on the version
        raise InputError(
            f"external weight data of {source} is missing ({_first_line(exc)}); "
            "keep the model's data files beside the .onnx file"
        ) from exc
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise InputError(
            f"{source} is not a valid ONNX model: {_first_line(exc)}; re-export it or check that it is complete"
        ) from exc
    return proto


def load_model(path: str | os.PathLike) -> ModelGraph:
    """Read, check and normalise a model file. The file itself is never modified."""
    source = Path(path)
    proto = read_model_proto(source)
    model = normalize_proto(proto, source_sha256=sha256_file(source), source_path=str(source))
    for note in model.notes:
        logger.info("%s: %s", source.name, note)
    return model


def normalize_proto(proto: onnx.ModelProto, *, source_sha256: str = "", source_path: str = "") -> ModelGraph:
    import onnx_graphsurgeon as gs

    where = source_path or "the model"
    graph = gs.import_onnx(_infer(proto, where))
    folded = 0
    for _ in range(_MAX_FOLD_ROUNDS):
        removed = fold_graph(graph)
        graph = gs.import_onnx(_infer(export_clean(graph), where))
        folded += removed
        if not removed or not any(node.op == "Shape" for node in graph.nodes):
            break  # only shape reads can become static after another round of inference
    notes = [f"folded constants: {folded} nodes became initializers"] if folded else []
    notes += rewrite_graph(graph)
    exported = export_clean(graph)
    exported.producer_name = proto.producer_name or "edgeprune"
    exported.producer_version = proto.producer_version
    del exported.metadata_props[:]
    exported.metadata_props.extend(proto.metadata_props)
    try:
        model = ModelGraph.from_proto(
            exported, source_sha256=source_sha256, source_path=source_path, notes=tuple(notes)
        )
    except Exception as exc:
        raise InputError(f"shape inference failed on {source_path or 'the model'}: {_first_line(exc)}") from exc
    return model


def _infer(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:
        raise InputError(f"shape inference failed on {where}: {_first_line(exc)}") from exc


def export_clean(graph) -> onnx.ModelProto:
    """Export a rewritten graph with no stale intermediate shapes (they are inferred again)."""
    import onnx_graphsurgeon as gs

    exported = gs.export_onnx(graph.cleanup().toposort(), do_type_check=False)
    del exported.graph.value_info[:]
    # IR 3 requires initializers to be listed as inputs, which the export does not do; IR 4+ does not
    exported.ir_version = min(max(exported.ir_version, 4), MAX_IR_VERSION)
    return exported


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
