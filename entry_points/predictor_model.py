"""The teachability predictor as an MLflow pyfunc, logged as code (models from code): MLflow
copies this file into the model and runs it on load, so nothing is pickled. The predictor's
files (LightGBM text models or MLP safetensors, and `predictor.json` with the feature names and
fingerprint) are the model's `predictor` artifact.

Input: a DataFrame with the predictor's feature columns (`feature_names.json` of the run).
Output: a DataFrame with `elp_net`, `route` and `p_<route>` for every route.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class TeachabilityPyfunc(PythonModel):
    """Loads `TeachabilityPredictor` from the `predictor` artifact and predicts with it."""

    def load_context(self, context: Any) -> None:
        from teachable.predictor import TeachabilityPredictor

        self.predictor = TeachabilityPredictor.load(context.artifacts["predictor"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.predictor.predict(model_input).reset_index(drop=True)


mlflow.models.set_model(TeachabilityPyfunc())
