"""Phase `promote`: move the `@champion` alias of the registered teachability predictor or student.

    mlflow run . -e promote --env-manager local                      # the predictor's challenger, if it is better
    mlflow run . -e promote --env-manager local -P version=3         # predictor version 3, unconditionally
    mlflow run . -e promote --env-manager local -P model=student     # the student's @candidate, if it is better

Without a version, the candidate alias (`@challenger`, set by `train_predictor`; for students
`@candidate`, set by `student`) becomes `@champion` when it beats the champion: a predictor by
its validation NDCG@k (model version tag `validation_ndcg`; also when there is no champion yet);
a student when it is in its competence band (version tag `competence` = `in_band`) and there is
no champion, the champion is out of its band, or its held-out success (tag
`heldout_success_rate`) is higher. Otherwise nothing changes. Logs `promoted` (1 or 0) and the
versions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from entry_points.cli import UpstreamError, parse_configs, run_cli
from entry_points.lm_registry import (
    CANDIDATE,
    STUDENT_MODEL,
    decide_student,
    heldout_success,
    set_alias,
)
from entry_points.predictor_registry import (
    K_TAG,
    PREDICTOR_MODEL,
    decide_predictor,
    predictor_version,
    validation_ndcg,
)
from entry_points.runs import TrackingArgs, log_metrics, start_phase
from entry_points.upstream import MODEL_URI_RE, model_version

PHASE = "promote"
log = logging.getLogger(__name__)


@dataclass
class PromoteConfig:
    """The `promote` phase."""

    version: str = field(default="", metadata={"help": "version to make champion (empty: the candidate, if it beats the champion)"})
    challenger: str = field(default="", metadata={"help": "alias of the candidate when no version is given "
                                                          "(empty: challenger for the predictor, candidate for the student)"})
    alias: str = field(default="champion", metadata={"help": "the alias to move"})
    model: str = field(default="predictor", metadata={"help": "the registered model: predictor (teachable-predictor) "
                                                              "or student (teachable-student)"})

    def __post_init__(self) -> None:
        if self.version and not self.version.isdigit():
            raise ValueError(f"version must be a version number such as 3 (or empty), got {self.version!r}.")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}.")

    @property
    def registered_name(self) -> str:
        return MODELS[self.model][0]

    @property
    def candidate_alias(self) -> str:
        return self.challenger or MODELS[self.model][1]


# model parameter -> (registered model, the alias its phase gives a new version)
MODELS = {"predictor": (PREDICTOR_MODEL, "challenger"), "student": (STUDENT_MODEL, CANDIDATE)}
CONFIG = (PromoteConfig, TrackingArgs)


def version_of(config: PromoteConfig, uri: str, param: str):
    """The registered version `uri` names (a predictor's errors say how to train and promote one;
    a student's how to make one).

    Raises:
        UpstreamError: no such model, alias or version.
    """
    if config.model == "predictor":
        return predictor_version(uri, param)
    m = MODEL_URI_RE.match(uri)
    try:
        return model_version(MlflowClient(), m["name"], m["alias"], m["version"], f"{param}={uri!r}")
    except UpstreamError as e:
        raise UpstreamError(f"{e} Run `mlflow run . -e student --env-manager local` (it registers a version as "
                            f"@{CANDIDATE}), or pass version=<n>.") from None


def main(argv: Sequence[str] | None = None) -> None:
    configs = config, _ = parse_configs(CONFIG, argv, __doc__)
    name = config.registered_name
    with start_phase(PHASE, configs):
        ref = f"models:/{name}/{config.version}" if config.version else f"models:/{name}@{config.candidate_alias}"
        candidate = version_of(config, ref, "version" if config.version else "challenger")
        try:
            champion = version_of(config, f"models:/{name}@{config.alias}", "alias")
        except UpstreamError:
            champion = None
        if config.version:
            promote = True
        elif config.model == "student":
            promote = decide_student(candidate, champion)
        else:
            if champion and champion.tags.get(K_TAG) != candidate.tags.get(K_TAG):
                log.warning("the champion's NDCG is at k=%s, the challenger's at k=%s: compared all the same",
                            champion.tags.get(K_TAG), candidate.tags.get(K_TAG))
            promote = decide_predictor(validation_ndcg(candidate), validation_ndcg(champion) if champion else None)
        if promote:
            set_alias(name, config.alias, candidate.version)
        figure, key = ((heldout_success, "heldout_success") if config.model == "student"
                       else (validation_ndcg, "validation_ndcg"))
        metrics = {"promoted": int(promote), "candidate_version": int(candidate.version),
                   f"candidate_{key}": figure(candidate)}
        if champion:
            metrics.update({"previous_champion_version": int(champion.version),
                            f"previous_champion_{key}": figure(champion)})
        log_metrics(metrics)
        log.info("%s version %s %s @%s", name, candidate.version,
                 "is now" if promote else "does not beat the current", config.alias)


if __name__ == "__main__":
    run_cli(main)
