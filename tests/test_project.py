"""The project's own contracts: MLproject parameters mirror the config dataclasses, and the
libraries never import MLflow, argparse or the entry points."""

from __future__ import annotations

import ast
import importlib
import re
import typing
from pathlib import Path

import pytest
import yaml

from entry_points.cli import config_fields

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("mlflow", "argparse", "entry_points")


def entry_points() -> dict:
    return yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]


def mlflow_type(tp: type) -> str:
    origin_args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = origin_args[0] if origin_args else tp
    return "float" if base in (int, float) else "string"


@pytest.mark.parametrize("name", sorted(entry_points()))
def test_mlproject_parameters_mirror_the_config(name: str) -> None:
    spec = entry_points()[name]
    module = importlib.import_module(f"entry_points.{name}")
    fields = config_fields(module.CONFIG)
    params = spec.get("parameters", {})
    assert set(params) == set(fields), f"{name}: MLproject parameters differ from its configs"
    for pname, p in params.items():
        _, default, hint = fields[pname]
        assert p["type"] == mlflow_type(hint), f"{name}.{pname}: type"
        shown = str(p["default"]).lower() if isinstance(default, bool) else p["default"]
        expected = str(default).lower() if isinstance(default, bool) else default
        if isinstance(expected, float | int) and not isinstance(expected, bool):
            assert float(shown) == float(expected), f"{name}.{pname}: default"
        else:
            assert str(shown) == ("" if expected is None else str(expected)), f"{name}.{pname}: default"
        assert f"--{pname} {{{pname}}}" in spec["command"], f"{name}: command does not pass {pname}"
    assert spec["command"].startswith(f"python -m entry_points.{name} ")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["teachable", "webshop_env"])
def test_libraries_never_import_mlflow_argparse_or_entry_points(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offenders = {str(p.relative_to(ROOT)): sorted(imported_modules(p) & set(FORBIDDEN)) for p in files}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_import_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom mlflow.tracking import MlflowClient\nimport argparse as ap\n")
    assert imported_modules(bad) & set(FORBIDDEN) == {"mlflow", "argparse"}


def test_webshop_env_never_imports_teachable() -> None:
    for path in (ROOT / "webshop_env").rglob("*.py"):
        assert "teachable" not in imported_modules(path), path


def test_conda_env_pins_match_pyproject() -> None:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_deps = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(deps) == sorted(d for d in pip_deps if re.match(r"^[A-Za-z]", d))
