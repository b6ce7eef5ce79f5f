"""How a phase is a command: its configs parsed from the command line (each dataclass's fields
are its flags; run references and the shop sit in the entry point's own dataclasses, beside the
library configs they fill), and bad input ended with `<phase>: error: <what to do>`, exit status 2, no traceback."""

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


def config_fields(specs: Sequence[Any]) -> dict[str, tuple[dataclasses.Field, Any, Any]]:
    """Every flag of the configs `specs` (config dataclasses, or instances of them whose values are
    the defaults): name -> (field, default, type hint), in order. A name that several configs
    declare (the phase's `seed`, say) is one flag that sets each of them; their defaults agree.

    Raises:
        TypeError: two configs declare one name with different defaults.
    """
    out: dict[str, tuple[dataclasses.Field, Any, Any]] = {}
    for spec in specs:
        cls = spec if isinstance(spec, type) else type(spec)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not isinstance(spec, type):
                default = getattr(spec, f.name)
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if f.name in out and out[f.name][1] != default:
                raise TypeError(f"--{f.name}: {cls.__name__} and an earlier config give it different defaults "
                                f"({out[f.name][1]!r}, {default!r}).")
            out.setdefault(f.name, (f, default, hints[f.name]))
    return out


def parse_configs(specs: Sequence[Any], argv: Sequence[str] | None = None, description: str = "") -> tuple[Any, ...]:
    """Parse `--field value` (or `--field-name`) flags into one instance of each config of `specs`
    (see `config_fields`), in order, as TRL's scripts parse their dataclasses.

    Every field is a flag; its help text is the field's `metadata["help"]`. Invalid values fail
    with argparse's usage message; each dataclass's `__post_init__` checks the rest.
    """
    parser = argparse.ArgumentParser(description=description)
    for name, (f, default, hint) in config_fields(specs).items():
        tp, optional = _field_type(hint)
        flags = dict.fromkeys((f"--{name}", f"--{name.replace('_', '-')}"))  # --label_run or --label-run
        parser.add_argument(*flags, dest=name, type=_converter(name, tp, optional), default=default,
                            help=f"{f.metadata.get('help', '')} (default: {default!r})")
    args = vars(parser.parse_args(argv))
    classes = [spec if isinstance(spec, type) else type(spec) for spec in specs]
    try:
        return tuple(cls(**{f.name: args[f.name] for f in dataclasses.fields(cls)}) for cls in classes)
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def config_of(configs: Sequence[Any], cls: type[C]) -> C:
    """The one config of type `cls` among a phase's parsed configs (so a helper does not depend
    on their order).

    Raises:
        LookupError: none or several of `configs` are a `cls`.
    """
    found = [c for c in configs if type(c) is cls]
    if len(found) != 1:
        raise LookupError(f"{len(found)} configs of type {cls.__name__} among {[type(c).__name__ for c in configs]}.")
    return found[0]


def config_params(configs: Any) -> dict[str, str]:
    """A config, or the configs of a phase, as MLflow params (None -> empty string, booleans
    lower-case as on the command line)."""
    def text(v: Any) -> str:
        return "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    parts = configs if isinstance(configs, tuple | list) else (configs,)
    return {k: text(v) for config in parts for k, v in dataclasses.asdict(config).items()}


@dataclasses.dataclass
class ShopArgs:
    """The shop a phase plays in (one declaration for every phase that loads it)."""

    data_dir: str = dataclasses.field(default="", metadata={
        "help": "folder with WebShop's files; empty: the embedded generated catalogue"})

    def load(self) -> Any:
        """The shop (`webshop_env.env.Shop`)."""
        from webshop_env.env import Shop

        return Shop.load(self.data_dir or None)
