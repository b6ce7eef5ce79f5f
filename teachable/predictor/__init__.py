"""The teachability predictor: ELP_net and the route of a snapshot from its features, no rollout.

`models` holds the two back ends (LightGBM, a two-head torch MLP) behind `TeachabilityPredictor`;
`metrics` the ranking metrics; `split` the split by trajectory; `training` fits and compares.
"""

from teachable.predictor.models import (
    BACKENDS,
    OUTPUT_COLUMNS,
    ROUTES,
    FeatureSetError,
    PredictorSettings,
    TeachabilityPredictor,
)

__all__ = ["BACKENDS", "OUTPUT_COLUMNS", "ROUTES", "FeatureSetError", "PredictorSettings", "TeachabilityPredictor"]
