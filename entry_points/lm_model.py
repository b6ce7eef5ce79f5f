"""A student (or a LoRA adapter on its base) as an MLflow pyfunc, logged as code (models from
code): MLflow copies this file into the model and runs it on load, so nothing is pickled.

The student folder is the model's `student` artifact; a pretrained base used as it is stays a
reference file in that folder, never a copy. An adapter model has the adapter folder as its
`adapter` artifact and names its base in the model config (`base`: `runs:/<student run>/model`,
`models:/teachable-student/<n>`, a local folder, `smollm2` or a cached hub id), resolved on load;
the base is not copied into it.

Input: a DataFrame of decision contexts, one row each: `instruction`, `observation`,
`valid_actions` (list of click actions), and optionally `has_search_bar`, `history` (list of
earlier actions) and `patch` (a teaching text), as `teachable.prompting.Context` holds them.
Output: a DataFrame with `action` (the chosen action) and `distribution` ({action: probability};
on a search page `{the greedy query: 1.0}`). Params: `greedy` (default true: the most likely
action) and `seed` (the sampling seed when `greedy` is false).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class StudentPyfunc(PythonModel):
    """Loads `LMPolicy` from the `student` artifact (or the `adapter` artifact on its base)."""

    def load_context(self, context: Any) -> None:
        from entry_points.lm_registry import policy_from_artifacts

        self.policy = policy_from_artifacts(context.artifacts, context.model_config or {})

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from entry_points.lm_registry import predict_frame

        return predict_frame(self.policy, model_input, params or {})


mlflow.models.set_model(StudentPyfunc())
