"""Scoring the catalogue on a Ray cluster with Ray Data: ``python -m modeling.predict --refresh --ray auto``.

This process (the driver) lists the photos to predict from the database, a bounded chunk per
query, into Ray's object store. Ray Data hands them in batches to a pool of workers (actors):
each loads the model once, then decodes and predicts batch after batch with the same scorer as
a refresh in one process. The driver stores the predictions as they stream back, a chunk per
transaction, so a killed refresh loses at most what was in flight and a re-run continues with
what is missing.

The workers never open the database: they read the model file, the photos and, for InceptionV3,
the activation cache under the home folder, at the paths the driver sees (one machine, or a
file system the cluster's nodes share).

Ray is optional (``pip install "shoelabel[ray]"``); it is imported only when a refresh uses it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from shoelabel.errors import UserError
from shoelabel.images import ImageError
from shoelabel.settings import get_settings

Row = tuple[int, str, str]  # a catalogue photo: (image id, sha256, path)
Scorer = Callable[[Sequence[Row]], tuple[dict[int, np.ndarray], dict[int, ImageError]]]
Scored = tuple[int, dict[int, np.ndarray], dict[str, str]]  # photos done, probabilities by id, unreadable path -> why
ROWS_PER_BLOCK = 256  # photos a worker takes at a time, at most: small enough to share the work out evenly
WHERE_IS_THE_CLUSTER = (
    "Give the head node's address as host:port (host:6379, or ray://host:10001 for Ray Client) "
    "and start the cluster there with `ray start --head`, or use --ray local"
)


class RayScoringError(UserError, RuntimeError):
    """Ray is not installed, the cluster cannot be reached, or its workers failed."""


def import_ray() -> ModuleType:
    """The ``ray`` package with Ray Data, or a :class:`RayScoringError` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayScoringError(
            f'Scoring on Ray needs Ray Data, which is not installed ({exc}): pip install "shoelabel[ray]", '
            "on this machine and on the cluster's nodes; or leave out --ray to score in this process."
        ) from exc
    return ray


def worker_environment() -> dict[str, str]:
    """The settings a worker needs (home folder, weights), as the driver has them; not the database URL,
    which may hold a password and which workers never use."""
    settings = {name: value for name, value in get_settings().environment().items() if name != "SHOELABEL_DB"}
    return settings | {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # workers sharing a GPU take memory as needed


class ScoringWorker:
    """A Ray Data worker: loads the model once (``make_scorer``), then predicts the batches it is handed.

    A batch holds columns ``image_id``, ``sha256`` and ``path``; the answer adds ``probabilities`` (NaN
    for a photo that could not be read) and ``error`` (why; empty for the others)."""

    def __init__(self, make_scorer: Callable[[], Scorer], n_classes: int, environment: dict[str, str]) -> None:
        os.environ.update(environment)
        self.scorer = make_scorer()
        self.n_classes = n_classes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = batch["image_id"].tolist()
        rows = list(zip(ids, batch["sha256"].tolist(), batch["path"].tolist(), strict=True))
        found, errors = self.scorer(rows)
        probabilities = np.full((len(ids), self.n_classes), np.nan, dtype=np.float32)
        for i, image_id in enumerate(ids):
            if image_id in found:
                probabilities[i] = found[image_id]
        reasons = np.array([errors[i].reason if i in errors else "" for i in ids], dtype=object)
        return {"image_id": batch["image_id"], "path": batch["path"], "probabilities": probabilities, "error": reasons}


@dataclass(frozen=True)
class RayCluster:
    """Where a refresh runs on Ray, and its pool of workers.

    ``address``: ``auto`` (the cluster in ``RAY_ADDRESS`` or started on this machine with ``ray start``,
    else a new local instance), ``local`` (a new local instance), or the head's address.
    """

    address: str = "auto"
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def connect(self) -> None:
        """Join the cluster, or start the local instance; nothing to do when this process is connected."""
        ray = import_ray()
        if ray.is_initialized():
            return
        self.check()
        try:
            ray.init(
                address=None if self.address == "auto" else self.address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,  # the refresh shows one progress bar; failures come back as exceptions
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise RayScoringError(
                f"Could not reach the Ray cluster at {self.address!r} ({exc}). {WHERE_IS_THE_CLUSTER}."
            ) from exc

    def check(self) -> None:
        """Fail at once, with what to do, when Ray is not installed or nothing listens at the address
        (Ray itself would keep retrying for minutes)."""
        import_ray()
        if self.address in ("auto", "local"):
            return
        host, _, port = self.address.removeprefix("ray://").rpartition(":")
        if not port.isdigit():
            raise RayScoringError(f"--ray {self.address!r} is not an address. {WHERE_IS_THE_CLUSTER}.")
        try:
            socket.create_connection((host or "localhost", int(port)), timeout=10).close()
        except OSError as exc:
            raise RayScoringError(
                f"Could not reach the Ray cluster at {self.address!r} ({exc}). {WHERE_IS_THE_CLUSTER}."
            ) from exc

    def predict(
        self,
        pages: Iterable[Sequence[Row]],
        make_scorer: Callable[[], Scorer],
        *,
        n_classes: int,
        total: int,
        rows_per_result: int,
    ) -> Iterator[Scored]:
        """Predict the photos of ``pages`` (about ``total`` of them) on the cluster; yields the results
        ``rows_per_result`` photos at a time, as the workers finish them (in no particular order)."""
        ray = import_ray()
        self.connect()
        import pyarrow as pa

        ray.data.DataContext.get_current().enable_progress_bars = False  # the refresh shows its own
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"

        per_block = max(1, min(ROWS_PER_BLOCK, -(-total // self.workers)))  # a few photos: one block per worker
        blocks = []  # references into the object store: the driver holds one page of rows at a time
        for page in pages:
            for start in range(0, len(page), per_block):
                ids, shas, paths = zip(*page[start : start + per_block], strict=True)
                table = pa.table({"image_id": pa.array(ids, pa.int64()), "sha256": shas, "path": paths})
                blocks.append(ray.put(table))
        if not blocks:
            return
        resources = {"num_cpus": self.cpus_per_worker}
        if self.gpus_per_worker:
            resources["num_gpus"] = self.gpus_per_worker
        dataset = ray.data.from_arrow_refs(blocks).map_batches(
            ScoringWorker,
            fn_constructor_kwargs={
                "make_scorer": make_scorer,
                "n_classes": n_classes,
                "environment": worker_environment(),
            },
            batch_size=per_block,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            **resources,
        )
        try:
            for batch in dataset.iter_batches(batch_size=rows_per_result, batch_format="numpy"):
                failed = batch["error"].astype(bool)
                ids, probabilities = batch["image_id"][~failed].tolist(), batch["probabilities"][~failed]
                unreadable = dict(zip(batch["path"][failed].tolist(), batch["error"][failed].tolist(), strict=True))
                yield len(batch["image_id"]), dict(zip(ids, probabilities, strict=True)), unreadable
        except ray.exceptions.RayError as exc:  # its text is the worker's traceback: its last line says why
            why = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise RayScoringError(f"the Ray workers failed: {why[-1] if why else type(exc).__name__}") from exc
