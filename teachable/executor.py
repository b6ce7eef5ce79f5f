"""Executors: where the batches of the phases that roll out (`rollouts`, `label`, `micro_train`,
`evaluate`) run.

A phase splits its work into batches (snapshots, episodes) and hands them to an executor with a
function `fn(world, batch)`. The *world* is what a worker keeps for the whole run: the catalogue
with its search index and the policies, built once per worker. The driver consumes the results
as they come back and alone writes files and logs, so resuming works the same whatever ran the
batches.

- `LocalExecutor` (`executor=local`, the default): one world in this process; the batches run in
  order, each through the same batched lockstep loop as always.
- `RayExecutor` (`executor=ray`): `workers` Ray actors, each building its world once from a small
  serialisable setup (a `ShopSpec` and `PolicySpec`s, never the catalogue or the weights
  themselves); a batch goes to whichever actor is free and results stream back in completion
  order. An actor that dies (its process exits or is killed, its node goes away) has its batch
  resubmitted to a replacement actor; `retries` counts these. A batch whose function raises an
  ordinary exception is not retried: that error is the caller's and is raised in the driver.

Results never depend on the executor or on the number of workers as long as the batches are the
same: every phase seeds per item (snapshot, goal, episode), never per worker or per batch.

On a cluster of several machines, every node needs the project installed (the same version) and
the paths the phase reads (`data_dir`, model and adapter folders) visible at the same place, e.g.
on a shared filesystem.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from teachable.policy.base import Policy
from webshop_env.env import Shop

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
EXECUTOR_FIELDS = ("executor", "ray_address", "ray_workers", "ray_gpus")
RAY_INSTALL_HINT = ("executor=ray needs Ray: install the extra with `pip install -e .[ray]` (or "
                    "`pip install ray==2.60.0`), or use executor=local.")

W = TypeVar("W")
B = TypeVar("B")
R = TypeVar("R")


@dataclass
class ExecutorConfig:
    """Where a phase's batches run; the phases that roll out inherit these fields.

    Which executor ran a phase never changes its results, so its fields (`EXECUTOR_FIELDS`) are
    left out of the key of resumable work files: a run killed under one executor resumes under
    the other. `policy_batch` (how many contexts share a forward pass) is part of the key: batch
    layouts round differently.
    """

    executor: str = field(default="local", metadata={"help": "local (in this process) or ray (Ray actors)"})
    ray_address: str = field(default="", metadata={"help": "executor=ray: auto (the running cluster), a cluster address, or empty (start a local cluster)"})
    ray_workers: int = field(default=0, metadata={"help": "executor=ray: actors (0: one per CPU of the cluster, or per ray_gpus GPUs when the policy runs on CUDA)"})
    ray_gpus: float = field(default=1.0, metadata={"help": "executor=ray: GPUs per actor when the policy runs on CUDA (a fraction shares a GPU)"})
    policy_batch: int = field(default=0, metadata={"help": "contexts an LM policy scores per forward pass (0: its default, 16; on a GPU raise it, e.g. 128)"})
    dtype: str = field(default="auto", metadata={"help": "weights of an LM policy: auto (float32 on CPU, bfloat16 on CUDA), bfloat16, float16, float32"})
    device_map: str = field(default="auto", metadata={"help": "placement of an LM policy on CUDA: auto (accelerate places it, sharded when it does not fit one GPU), none, or a device"})
    attn_implementation: str = field(default="", metadata={"help": "attention of an LM policy: sdpa, eager, flash_attention_2 (needs flash-attn); empty: the library's default"})

    def model_loading(self) -> dict[str, Any]:
        """How the phase's LM policies are loaded (`PolicySpec` fields)."""
        return {"dtype": self.dtype, "device_map": self.device_map, "attn_implementation": self.attn_implementation or None}

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}.")
        if self.attn_implementation not in ("", "sdpa", "eager", "flash_attention_2"):
            raise ValueError(f"attn_implementation must be sdpa, eager, flash_attention_2 or empty, got "
                             f"{self.attn_implementation!r}.")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor {self.executor!r} is unknown; use one of {', '.join(EXECUTORS)}.")
        if self.ray_workers < 0:
            raise ValueError(f"ray_workers must be >= 0 (0: as many as the cluster holds), got {self.ray_workers}.")
        if self.policy_batch < 0:
            raise ValueError(f"policy_batch must be >= 0 (0: the policy's default), got {self.policy_batch}.")
        if self.ray_gpus <= 0:
            raise ValueError(f"ray_gpus must be > 0 (e.g. 1, or 0.5 for two actors per GPU), got {self.ray_gpus}.")


# ------------------------------------------------------------------ what a worker builds
@dataclass(frozen=True)
class ShopSpec:
    """How a worker loads the catalogue and its search index (`Shop.load` arguments)."""

    data_dir: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, data_dir: str | None = None, **options: Any) -> ShopSpec:
        return cls(data_dir or None, tuple(sorted(options.items())))

    def load(self) -> Shop:
        return Shop.load(self.data_dir, **dict(self.options))


@dataclass(frozen=True)
class PolicySpec:
    """How a worker builds a policy (`make_policy` arguments): a name (`expert`, `random`), a model
    folder or `smollm2`, with an optional LoRA adapter, device, sampling temperature and
    contexts per forward pass."""

    name_or_path: str
    temperature: float = 1.0
    adapter: str | None = None
    device: str | None = None
    batch_size: int = 0  # contexts per forward pass of an LM policy (0: its default)
    dtype: str | None = None  # how a model is loaded (`teachable.models.load_model`)
    device_map: str | None = None
    attn_implementation: str | None = None

    def build(self, shop: Shop) -> Policy:
        from teachable.policy.factory import make_policy

        settings: dict[str, Any] = {"batch_size": self.batch_size} if self.batch_size else {}
        for name in ("dtype", "device_map", "attn_implementation"):
            if getattr(self, name):
                settings[name] = getattr(self, name)
        return make_policy(self.name_or_path, shop, temperature=self.temperature, adapter=self.adapter,
                           device=self.device, **settings)

    def wants_gpu(self, cluster_has_gpus: bool) -> bool:
        """Whether a worker should hold a GPU: a model on `cuda`, or on the default device of a cluster with GPUs."""
        from teachable.policy.factory import BUILTIN_POLICIES

        if self.name_or_path in BUILTIN_POLICIES:
            return False
        if self.device:
            return self.device.startswith("cuda")
        return cluster_has_gpus


# ------------------------------------------------------------------ executors
class Executor(Protocol):
    """Runs `fn(world, batch)` for every batch; yields `(batch index, result)` as results arrive."""

    workers: int
    retries: int

    def map(self, fn: Callable[[Any, B], R], batches: Sequence[B]) -> Iterator[tuple[int, R]]: ...

    def close(self) -> None: ...


class LocalExecutor(Generic[W]):
    """The batches in order, in this process, on one world."""

    workers = 1

    def __init__(self, world: W) -> None:
        self.world = world
        self.retries = 0

    def map(self, fn: Callable[[W, B], R], batches: Sequence[B]) -> Iterator[tuple[int, R]]:
        for i, batch in enumerate(batches):
            yield i, fn(self.world, batch)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor[W]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Worker:
    """A Ray actor's body: builds its world once, then runs batches on it."""

    def __init__(self, setup: Callable[[], Any]) -> None:
        self.world = setup()

    def ready(self) -> int:
        return os.getpid()

    def run(self, fn: Callable[[Any, Any], Any], batch: Any, index: int, attempt: int,
            crash_on: tuple[int, ...]) -> Any:
        if attempt == 0 and index in crash_on:
            os._exit(17)  # fault injection: the process dies as a crashed or preempted worker would
        return fn(self.world, batch)


class RayNotInstalledError(ImportError):
    """executor=ray without Ray installed; the message says how to install it."""


class ClusterTooSmallError(ValueError):
    """More Ray actors asked for than the cluster can hold; the message gives its size."""


class ActorStartTimeoutError(TimeoutError):
    """Ray actors not up within the start timeout; the message gives the free resources."""


def import_ray() -> Any:
    """The `ray` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalledError(RAY_INSTALL_HINT) from e
    return ray


class RayExecutor:
    """Batches on Ray actors, each holding a world built once by `setup`.

    Args:
        setup: a picklable callable that builds a worker's world (called once in each actor).
        address: `auto` (the running cluster, e.g. after `ray start --head`), a cluster address
            (`ray://host:10001`, `host:6379`), or empty: a local cluster started here (and shut
            down by `close`).
        workers: actors to start (0: one per CPU of the cluster, or one per `gpus` GPUs when
            they hold a GPU).
        policies: the policies a world holds: an actor requests `gpus` GPUs when one of them
            runs on CUDA (`PolicySpec.wants_gpu`, judged on the cluster's resources).
        gpus: GPUs per actor when they hold a GPU (a fraction lets actors share a GPU).
        num_cpus: CPUs of a local cluster started here (None: all of this machine's).
        max_retries: resubmissions of one batch after its actor died before giving up.
        start_timeout_s: how long to wait for the actors to be scheduled and to build their
            worlds (a cluster whose CPUs or GPUs are taken by other jobs would otherwise leave
            them pending for ever).
        crash_on: fault injection for tests: the first attempt of each of these batch indices
            makes its actor's process exit. Only settable from Python.

    Raises:
        RayNotInstalledError: Ray is not installed (the message says how to install it).
        ClusterTooSmallError: more workers than the cluster can hold (the message gives its size).
        ActorStartTimeoutError: the actors were not all up within `start_timeout_s`.
    """

    def __init__(self, setup: Callable[[], Any], *, address: str = "", workers: int = 0,
                 policies: Sequence[PolicySpec] = (), gpus: float = 1.0, num_cpus: int | None = None,
                 max_retries: int = 3, crash_on: Sequence[int] = (), start_timeout_s: float = 600.0) -> None:
        ray = import_ray()
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            # actors' warnings (e.g. a snapshot that does not restore) show in this process's log
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False)
                self._started = True
        resources = ray.cluster_resources()
        cpus, gpus_total = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        use_gpu = any(p.wants_gpu(gpus_total > 0) for p in policies)
        fits = int(gpus_total // gpus) if use_gpu else cpus
        self.workers = workers or max(1, fits)
        if self.workers > fits:
            self.close()
            what = f"{gpus_total:g} GPUs at {gpus:g} per actor" if use_gpu else f"{cpus} CPUs"
            fix = (f"ask for at most {fits}, or add nodes to the cluster" if fits else
                   "add nodes with GPUs to the cluster, or run the policy on the CPU (device=cpu)")
            raise ClusterTooSmallError(f"ray_workers={self.workers} actors do not fit the Ray cluster ({what}); {fix}.")
        self._actor_class = ray.remote(num_cpus=1, num_gpus=gpus if use_gpu else 0, max_restarts=0)(_Worker)
        self._setup = setup
        self.max_retries = max_retries
        self.crash_on = tuple(crash_on)
        self.retries = 0
        self.start_timeout_s = start_timeout_s
        self._needs = f"{gpus:g} GPU and 1 CPU" if use_gpu else "1 CPU"
        self._actors = [self._actor_class.remote(setup) for _ in range(self.workers)]
        log.info("Ray executor: %d actors (%s per actor) on a cluster of %d CPUs, %g GPUs", self.workers,
                 self._needs, cpus, gpus_total)
        self._wait_ready(self._actors)

    def _wait_ready(self, actors: Sequence[Any]) -> None:
        """Block until `actors` have built their worlds; TimeoutError (all actors stopped) past the timeout.

        An actor whose world fails to build raises its error here, not at its first batch."""
        refs = [a.ready.remote() for a in actors]
        done, pending = self._ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        if pending:
            free = self._ray.available_resources()
            self.close()
            raise ActorStartTimeoutError(
                f"{len(pending)} of {len(refs)} Ray actors ({self._needs} each) were not up after "
                f"{self.start_timeout_s:g} s; the cluster has {free.get('CPU', 0):g} CPUs and {free.get('GPU', 0):g} "
                "GPUs free. Other jobs may hold its resources: ask for fewer ray_workers, wait for them, or "
                "add nodes. (A slow world build, e.g. a large model, needs a longer start_timeout_s.)")
        try:
            self._ray.get(done)
        except Exception:
            self.close()
            raise

    def map(self, fn: Callable[[Any, B], R], batches: Sequence[B]) -> Iterator[tuple[int, R]]:
        """Yield `(index, fn(world, batches[index]))` in completion order; every batch exactly once.

        Raises:
            RuntimeError: a batch lost its actor more than `max_retries` times.
            Exception: whatever `fn` raised on a batch (as Ray's wrapper of it).
        """
        ray = self._ray
        fn_ref = ray.put(fn)
        queue = deque(range(len(batches)))
        attempts = [0] * len(batches)
        idle = list(self._actors)
        running: dict[Any, tuple[int, Any]] = {}  # object ref -> (batch index, actor)
        while queue or running:
            while queue and idle:
                i, actor = queue.popleft(), idle.pop()
                running[actor.run.remote(fn_ref, batches[i], i, attempts[i], self.crash_on)] = (i, actor)
            [ref], _ = ray.wait(list(running), num_returns=1)
            i, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as e:  # the actor or its node died
                attempts[i] += 1
                self.retries += 1
                if attempts[i] > self.max_retries:
                    raise RuntimeError(f"batch {i} lost its Ray actor {attempts[i]} times; giving up "
                                       f"(last error: {type(e).__name__}: {e}).") from e
                log.warning("a Ray actor died on batch %d (%s); retrying it on a new actor", i, type(e).__name__)
                self._replace(actor)
                idle.append(self._actors[-1])
                queue.appendleft(i)
                continue
            idle.append(actor)
            yield i, result

    def _replace(self, dead: Any) -> None:
        self._ray.kill(dead, no_restart=True)
        new = self._actor_class.remote(self._setup)
        self._actors = [a for a in self._actors if a is not dead] + [new]
        self._wait_ready([new])

    def close(self) -> None:
        """Stop the actors (and the local cluster when this executor started it)."""
        for actor in getattr(self, "_actors", []):
            self._ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(config: ExecutorConfig, setup: Callable[[], Any], *, policies: Sequence[PolicySpec] = (),
                  local: Callable[[], Any] | None = None, **ray_options: Any) -> LocalExecutor[Any] | RayExecutor:
    """The executor `config` asks for, with worlds built by `setup`.

    Args:
        config: `executor`, `ray_address`, `ray_workers`, `ray_gpus`.
        setup: a picklable callable building a worker's world (called here for `local`).
        policies: the policies the world holds; actors request GPUs when one of them runs on CUDA.
        local: builds the world for `local` instead of `setup`, e.g. from a shop this process
            has already loaded.
        **ray_options: further `RayExecutor` arguments (`num_cpus`, `max_retries`, `crash_on`).

    Raises:
        ImportError: executor=ray without Ray installed (the message says how to install it).
    """
    if config.executor == "local":
        return LocalExecutor((local or setup)())
    return RayExecutor(setup, address=config.ray_address, workers=config.ray_workers, policies=policies,
                       gpus=config.ray_gpus, **ray_options)
