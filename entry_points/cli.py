"""How a phase is a command: its config parsed from the command line (a dataclass's fields are
its flags), and bad input ended with `<phase>: error: <what to do>`, exit status 2, no traceback."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


class PhaseError(RuntimeError):
    """A phase cannot run as asked (bad input, a missing upstream run); the message says what to do."""


class UpstreamError(PhaseError):
    """An upstream input cannot be resolved; the message says what to run or pass instead."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors of bad input or a bad upstream run, whose messages say what to do: a command
    reports them without a traceback."""
    from teachable.evaluation import EvalSetError
    from teachable.executor import (
        ActorStartTimeoutError,
        ClusterTooSmallError,
        RayNotInstalledError,
    )
    from teachable.label.labeling import WorkFileError
    from teachable.policy.factory import ModelNotFoundError
    from teachable.policy.teacher.openai_teacher import TeacherError
    from teachable.predictor.models import FeatureSetError
    from teachable.records import RecordError
    from teachable.recovery import RecoveryError
    from teachable.selection import BudgetError
    from teachable.supervision.examples import SupervisionError
    from teachable.training.matrix import EmptyCellError
    from webshop_env.catalog import CatalogError
    from webshop_env.state import StateError

    return (PhaseError, BudgetError, FeatureSetError, RecoveryError, EmptyCellError, SupervisionError, RecordError,
            TeacherError, CatalogError, StateError, ModelNotFoundError, WorkFileError, ClusterTooSmallError,
            ActorStartTimeoutError, RayNotInstalledError, EvalSetError)


def run_cli(main: Callable[[], Any]) -> None:
    """Run an entry point's `main` as a command, logging at INFO. An error of bad input or a bad
    upstream run (see `user_errors`) ends it with `<phase>: error: <message>` and exit status 2,
    without a traceback; the phase's run is already marked FAILED."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        main()
    except user_errors() as e:
        print(f"{Path(sys.argv[0]).stem}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _field_type(tp: Any) -> tuple[type, bool]:
    """The scalar type of a config field and whether it may be None."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _converter(name: str, tp: type, optional: bool):
    def convert(text: str) -> Any:
        if optional and text.strip().lower() in ("", "none", "null"):
            return None
        if tp is bool:
            low = text.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise argparse.ArgumentTypeError(f"{name}: expected true or false, got {text!r}")
        if tp is int:
            value = float(text)
            if not value.is_integer():
                raise argparse.ArgumentTypeError(f"{name}: expected a whole number, got {text!r}")
            return int(value)
        return tp(text)

    convert.__name__ = tp.__name__
    return convert


def parse_config(cls: type[C], argv: Sequence[str] | None = None, description: str = "") -> C:
    """Parse `--field value` (or `--field-name`) flags into the config dataclass `cls` (defaults from the dataclass).

    Every field is a flag; its help text is the field's `metadata["help"]`. Invalid values fail
    with argparse's usage message; the dataclass's `__post_init__` checks the rest.
    """
    parser = argparse.ArgumentParser(description=description)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _field_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flags = dict.fromkeys((f"--{f.name}", f"--{f.name.replace('_', '-')}"))  # --label_run or --label-run
        parser.add_argument(*flags, dest=f.name, type=_converter(f.name, tp, optional), default=default,
                            help=f"{f.metadata.get('help', '')} (default: {default!r})")
    args = parser.parse_args(argv)
    try:
        return cls(**vars(args))
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def config_params(config: Any) -> dict[str, str]:
    """The config as MLflow params (None -> empty string, booleans lower-case as on the command line)."""
    def text(v: Any) -> str:
        return "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return {k: text(v) for k, v in dataclasses.asdict(config).items()}
