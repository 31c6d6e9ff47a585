"""Plans, surgery, and the proof that surgery is right."""

from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.mask import masked_model
from edgeprune.surgery.plan import PruningPlan, simple_plan, validate_plan
from edgeprune.surgery.verify import Verification, compare_outputs, random_inputs, run_model, verify

__all__ = [
    "PruningPlan",
    "Verification",
    "apply_plan",
    "compare_outputs",
    "masked_model",
    "random_inputs",
    "run_model",
    "simple_plan",
    "validate_plan",
    "verify",
]
