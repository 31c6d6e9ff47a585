"""What the student is judged against: the teacher's outputs (never differentiated) and the held-out measure."""

from __future__ import annotations

import math


class Teacher:
    """The original model's outputs, never differentiated: by ONNX Runtime on the CPU (about twice as fast
    as torch op by op), by the executor on CUDA or when the feature terms need its inner tensors."""

    def __init__(self, model, device, with_features: bool) -> None:
        self.output_names, self.device = model.output_names, device
        self.session = self.module = None
        if with_features or device.type != "cpu":
            from edgeprune.train.executor import GraphModule

            self.module = GraphModule(model).to(device).eval().requires_grad_(False)
        else:
            from edgeprune.runtime import create_session

            self.session = create_session(model.serialized(), "cpu")

    def __call__(self, inputs, extra_outputs=()):
        import torch

        if self.module is not None:
            with torch.no_grad():
                return self.module(inputs, extra_outputs=extra_outputs) if extra_outputs else self.module(inputs)
        feeds = {name: t.detach().cpu().numpy() for name, t in inputs.items()}
        return tuple(torch.from_numpy(o) for o in self.session.run(list(self.output_names), feeds))


class Judge:
    """The held-out measure: accuracy with labels, else top-1 agreement with the teacher (classifiers), else
    minus the relative output error. The teacher's held-out outputs are computed once."""

    def __init__(self, teacher, held_out, kinds, device, batch_size: int) -> None:
        self.data, self.kinds, self.device, self.batch_size = held_out, kinds, device, batch_size
        self.classifier = next((i for i, k in enumerate(kinds) if k.classifier), None)
        if self.classifier is not None:
            self.measure = "accuracy" if held_out.labels is not None else "agreement"
        else:
            self.measure = "neg_rel_error"
        self.teacher_outputs = []
        for batch in held_out.batches(batch_size):
            self.teacher_outputs.append([o.cpu() for o in teacher(_tensors(batch.inputs, device))])

    def __call__(self, module) -> float:
        import torch

        module.eval()
        hits, error, energy = 0, 0.0, 0.0
        with torch.no_grad():
            for batch, reference in zip(self.data.batches(self.batch_size), self.teacher_outputs):
                outputs = [o.cpu() for o in module(_tensors(batch.inputs, self.device))]
                if self.classifier is not None:
                    predicted = outputs[self.classifier].argmax(1)
                    target = (
                        torch.from_numpy(batch.labels)
                        if self.measure == "accuracy"
                        else reference[self.classifier].argmax(1)
                    )
                    hits += int((predicted == target).sum())
                for got, want in zip(outputs, reference):
                    error += float(((got.double() - want.double()) ** 2).sum())
                    energy += float((want.double() ** 2).sum())
        module.train()
        if self.classifier is not None:
            return hits / self.data.count
        return -math.sqrt(error / max(energy, 1e-30))


def _tensors(inputs, device):
    from edgeprune.train.data import to_tensors

    return to_tensors(inputs, device)
