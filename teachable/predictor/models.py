"""The teachability predictor: from features, ELP_net (regression) and the route (classification).

Two back ends share one interface (`fit`, `predict`, `save`, `load`):

- `lightgbm` (default): two LightGBM boosters, a regressor for ELP_net and a multiclass
  classifier for the route, single-threaded and deterministic given the seed; saved in
  LightGBM's text format.
- `mlp`: a small torch network, a shared trunk and two heads (ELP_net and the route logits),
  trained on standardised features with MSE + `route_weight` x cross-entropy; weights
  initialised and batches shuffled from a `torch.Generator`; saved as safetensors.

`TeachabilityPredictor` wraps a fitted back end with the feature names and the feature-set
fingerprint it was trained on, and refuses features of another set. A saved predictor is a
folder: `predictor.json` (back end, feature names, fingerprint, feature config, settings,
routes, standardisation) plus the back end's weight files; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from teachable.supervision.formats import FORMATS

ROUTES: tuple[str, ...] = ("none", *FORMATS)
BACKENDS: tuple[str, ...] = ("lightgbm", "mlp")
META_FILE = "predictor.json"
PREDICTOR_SCHEMA_VERSION = 1
OUTPUT_COLUMNS: tuple[str, ...] = ("elp_net", "route", *(f"p_{r}" for r in ROUTES))


class FeatureSetError(ValueError):
    """Features of another feature set than the predictor was trained on."""


@dataclass
class PredictorSettings:
    """Hyperparameters of both back ends."""

    lgb_num_leaves: int = field(default=7, metadata={"help": "LightGBM leaves per tree"})
    lgb_rounds: int = field(default=100, metadata={"help": "LightGBM boosting rounds"})
    lgb_learning_rate: float = field(default=0.05, metadata={"help": "LightGBM learning rate"})
    lgb_min_data_in_leaf: int = field(default=3, metadata={"help": "LightGBM minimum snapshots per leaf"})
    mlp_hidden: int = field(default=64, metadata={"help": "MLP hidden units (two layers)"})
    mlp_epochs: int = field(default=200, metadata={"help": "MLP passes over the training set"})
    mlp_learning_rate: float = field(default=3e-3, metadata={"help": "MLP Adam learning rate"})
    mlp_weight_decay: float = field(default=1e-3, metadata={"help": "MLP Adam weight decay"})
    route_weight: float = field(default=0.5, metadata={"help": "weight of the route cross-entropy in the MLP loss"})
    seed: int = field(default=0, metadata={"help": "seed of the split, the models and the random baseline"})

    def __post_init__(self) -> None:
        for name in ("lgb_num_leaves", "lgb_rounds", "lgb_min_data_in_leaf", "mlp_hidden", "mlp_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.lgb_num_leaves < 2:
            raise ValueError(f"lgb_num_leaves must be >= 2, got {self.lgb_num_leaves}.")
        for name in ("lgb_learning_rate", "mlp_learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        if self.route_weight < 0 or self.mlp_weight_decay < 0:
            raise ValueError("route_weight and mlp_weight_decay must be >= 0.")


def route_index(routes: Sequence[str]) -> np.ndarray:
    """Route names to class indices (`ROUTES` order); an unknown route is an error."""
    unknown = sorted(set(routes) - set(ROUTES))
    if unknown:
        raise ValueError(f"unknown routes {unknown}; routes are {', '.join(ROUTES)}.")
    return np.array([ROUTES.index(r) for r in routes], dtype=np.int64)


# ------------------------------------------------------------------ LightGBM
class LightGBMBackend:
    name = "lightgbm"

    def __init__(self, settings: PredictorSettings) -> None:
        self.settings = settings
        self.regressor: Any = None
        self.classifier: Any = None

    def _params(self, objective: str, **extra: Any) -> dict[str, Any]:
        s = self.settings
        return {"objective": objective, "num_leaves": s.lgb_num_leaves, "learning_rate": s.lgb_learning_rate,
                "min_data_in_leaf": s.lgb_min_data_in_leaf, "min_data_in_bin": 1, "num_threads": 1,
                "deterministic": True, "force_row_wise": True, "seed": s.seed, "verbose": -1, **extra}

    def fit(self, x: np.ndarray, elp: np.ndarray, route: np.ndarray) -> None:
        import lightgbm as lgb

        rounds = self.settings.lgb_rounds
        self.regressor = lgb.train(self._params("regression"), lgb.Dataset(x, elp), rounds)
        self.classifier = lgb.train(self._params("multiclass", num_class=len(ROUTES)), lgb.Dataset(x, route), rounds)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.regressor.predict(x), self.classifier.predict(x)

    def save(self, folder: Path) -> dict[str, Any]:
        self.regressor.save_model(str(folder / "lgb_elp.txt"))
        self.classifier.save_model(str(folder / "lgb_route.txt"))
        return {}

    def load(self, folder: Path, meta: dict[str, Any]) -> None:
        import lightgbm as lgb

        self.regressor = lgb.Booster(model_file=str(folder / "lgb_elp.txt"))
        self.classifier = lgb.Booster(model_file=str(folder / "lgb_route.txt"))


# ------------------------------------------------------------------ MLP
def _mlp(n_in: int, hidden: int):
    import torch
    from torch import nn

    class TwoHeadMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
            self.elp = nn.Linear(hidden, 1)
            self.route = nn.Linear(hidden, len(ROUTES))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.trunk(x)
            return self.elp(h).squeeze(-1), self.route(h)

    return TwoHeadMLP()


class MLPBackend:
    name = "mlp"

    def __init__(self, settings: PredictorSettings) -> None:
        self.settings = settings
        self.net: Any = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def _init(self, n_in: int, generator: Any) -> None:
        import torch

        self.net = _mlp(n_in, self.settings.mlp_hidden)
        with torch.no_grad():
            for module in self.net.modules():
                if isinstance(module, torch.nn.Linear):
                    bound = 1.0 / math.sqrt(module.in_features)
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.zero_()

    def _x(self, x: np.ndarray):
        import torch

        return torch.tensor((x - self.mean) / self.std, dtype=torch.float32)

    def fit(self, x: np.ndarray, elp: np.ndarray, route: np.ndarray) -> None:
        import torch

        s = self.settings
        generator = torch.Generator().manual_seed(s.seed)
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)
        self._init(x.shape[1], generator)
        xt, yt, rt = self._x(x), torch.tensor(elp, dtype=torch.float32), torch.tensor(route, dtype=torch.long)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=s.mlp_learning_rate, weight_decay=s.mlp_weight_decay)
        batch = 32
        self.net.train()
        for _ in range(s.mlp_epochs):
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(xt), batch):
                idx = order[start:start + batch]
                pred, logits = self.net(xt[idx])
                loss = torch.nn.functional.mse_loss(pred, yt[idx]) + \
                    s.route_weight * torch.nn.functional.cross_entropy(logits, rt[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.net.eval()

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            pred, logits = self.net(self._x(x))
        return pred.numpy().astype(np.float64), torch.softmax(logits, dim=-1).numpy().astype(np.float64)

    def save(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(folder / "mlp.safetensors"))
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def load(self, folder: Path, meta: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        self.mean, self.std = np.asarray(meta["mean"]), np.asarray(meta["std"])
        self.net = _mlp(len(self.mean), self.settings.mlp_hidden)
        self.net.load_state_dict(load_file(str(folder / "mlp.safetensors")))
        self.net.eval()


def make_backend(name: str, settings: PredictorSettings) -> LightGBMBackend | MLPBackend:
    if name == "lightgbm":
        return LightGBMBackend(settings)
    if name == "mlp":
        return MLPBackend(settings)
    raise ValueError(f"unknown predictor backend {name!r}; use one of {', '.join(BACKENDS)}.")


# ------------------------------------------------------------------ the predictor
class TeachabilityPredictor:
    """A fitted back end with the feature set it was trained on.

    Attributes:
        backend: `lightgbm` or `mlp`.
        feature_names: the columns it reads, in order.
        fingerprint: the feature-set fingerprint (`teachable.features.feature_fingerprint`).
        feature_config: the feature config, so a user can compute the same features.
    """

    def __init__(self, backend: str, settings: PredictorSettings, feature_names: Sequence[str], fingerprint: str,
                 feature_config: dict[str, Any]) -> None:
        self.backend = backend
        self.settings = settings
        self.feature_names = list(feature_names)
        self.fingerprint = fingerprint
        self.feature_config = dict(feature_config)
        self.model = make_backend(backend, settings)

    def _matrix(self, features: pd.DataFrame, fingerprint: str | None) -> np.ndarray:
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise FeatureSetError(
                f"the features have fingerprint {fingerprint}, the predictor was trained on {self.fingerprint} "
                f"(feature config {self.feature_config}); compute features with that config or retrain the predictor "
                "on these features (train_predictor).")
        missing = [n for n in self.feature_names if n not in features.columns]
        if missing:
            raise FeatureSetError(f"the features lack {len(missing)} columns the predictor reads (e.g. {missing[:3]}); "
                                  f"compute them with the feature config {self.feature_config}.")
        return features[self.feature_names].to_numpy(dtype=np.float64)

    def fit(self, features: pd.DataFrame, elp_net: Sequence[float], routes: Sequence[str],
            fingerprint: str | None = None) -> TeachabilityPredictor:
        self.model.fit(self._matrix(features, fingerprint), np.asarray(elp_net, dtype=np.float64), route_index(routes))
        return self

    def predict(self, features: pd.DataFrame, fingerprint: str | None = None) -> pd.DataFrame:
        """Columns `OUTPUT_COLUMNS`: predicted ELP_net, the most likely route and each route's probability."""
        elp, probs = self.model.predict(self._matrix(features, fingerprint))
        out = pd.DataFrame({"elp_net": elp, "route": [ROUTES[i] for i in probs.argmax(axis=1)]}, index=features.index)
        for i, r in enumerate(ROUTES):
            out[f"p_{r}"] = probs[:, i]
        return out

    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the predictor into `folder` (created); `extra` is kept in `predictor.json`."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"schema_version": PREDICTOR_SCHEMA_VERSION, "backend": self.backend,
                "feature_names": self.feature_names, "fingerprint": self.fingerprint,
                "feature_config": self.feature_config, "settings": asdict(self.settings), "routes": list(ROUTES),
                "state": self.model.save(out), "extra": extra or {}}
        (out / META_FILE).write_text(json.dumps(meta, indent=1))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> TeachabilityPredictor:
        """Load a predictor written by `save`.

        Raises:
            FileNotFoundError: not a predictor folder.
            ValueError: another schema version or route set.
        """
        folder = Path(folder)
        path = folder / META_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not a predictor folder (no {META_FILE}); train one with train_predictor.")
        meta = json.loads(path.read_text())
        if meta.get("schema_version") != PREDICTOR_SCHEMA_VERSION or meta.get("routes") != list(ROUTES):
            raise ValueError(f"{path}: predictor schema {meta.get('schema_version')} with routes {meta.get('routes')}; "
                             f"this version reads schema {PREDICTOR_SCHEMA_VERSION}; retrain it with train_predictor.")
        predictor = cls(meta["backend"], PredictorSettings(**meta["settings"]), meta["feature_names"],
                        meta["fingerprint"], meta["feature_config"])
        predictor.model.load(folder, meta["state"])
        return predictor
