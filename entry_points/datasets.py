"""Records files (rollouts, failure snapshots, labeled snapshots) as MLflow datasets.

A records file is logged as a dataset input of every run that makes or reads it (see
`entry_points.upstream.log_records` and `read_records`), so the MLflow UI shows the lineage from
a run to the runs that used its output. The dataset holds no data: its source is the artifact's
URI, its digest a SHA-256 of the file's bytes (equal files, equal datasets), its schema the
top-level fields of the first record and its profile the number of records; computing them
reads the file once, as a stream.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

OUTPUT = "output"  # the context of a records file on the run that made it
TRAINING = "training"
EVALUATION = "evaluation"
JSON_TYPES = {str: DataType.string, bool: DataType.boolean, int: DataType.long, float: DataType.double}


class RecordsDataset(MetaDataset):
    """A JSONL records file: a `MetaDataset` whose profile is its number of records."""

    def __init__(self, source: DatasetSource, name: str, digest: str, schema: Schema | None, num_records: int):
        self._num_records = num_records
        super().__init__(source, name=name, digest=digest, schema=schema)

    @property
    def profile(self) -> dict[str, int]:
        return {"num_records": self._num_records}

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def records_dataset(path: Path, uri: str) -> RecordsDataset:
    """The dataset of the records file `path`, stored at artifact `uri`, named by the file's stem."""
    digest = hashlib.sha256()
    first, count = b"", 0
    with path.open("rb") as fh:
        for line in fh:
            digest.update(line)
            if line.strip():
                first, count = first or line, count + 1
    return RecordsDataset(dataset_source(uri), path.stem, digest.hexdigest()[:10], first_record_schema(first), count)


def first_record_schema(line: bytes) -> Schema | None:
    """The top-level fields of a record and their JSON types (nested values and nulls as `any`)."""
    if not line:
        return None
    record: dict[str, Any] = json.loads(line)
    return Schema([ColSpec(JSON_TYPES.get(type(v), AnyType()), name, required=v is not None)
                   for name, v in record.items()])


def dataset_source(uri: str) -> DatasetSource:
    """The dataset source of an artifact URI: a tracking server's proxied artifact
    (`mlflow-artifacts:`, which MLflow has no dataset source for) by its download URL, any
    other by MLflow's own resolution (a local file, s3, gs, ...)."""
    if uri.startswith("mlflow-artifacts:"):
        server = mlflow.get_tracking_uri().rstrip("/")
        return HTTPDatasetSource(f"{server}/api/2.0/mlflow-artifacts/artifacts{urlparse(uri).path}")
    with warnings.catch_warnings():
        # file URIs match the dataset sources of both the "" and the "file" scheme, the same class
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        return resolve_dataset_source(uri)


def log_dataset(path: Path, uri: str, context: str) -> None:
    """Log the records file `path` (stored at `uri`) as a dataset input of the active run."""
    mlflow.log_input(records_dataset(path, uri), context=context)
