"""Recovery trajectories: what the expert does from the failure states where it still succeeds.

A labeled snapshot with a high `L_upper = p_expert - p_policy` is a state the student fails
from but the expert recovers from. Restored there, the expert (deterministic: one rollout is
exact) plays the goal to the end; each of its steps becomes one prompt-completion pair, the
prompt rendered through `teachable.prompting` (by the student's own `LMPolicy.prompt`, so
training and acting see the same text) with the history of the failed episode before the
snapshot followed by the expert's own actions, and the completion ` <expert action>`.

Snapshots are kept when `L_upper >= min_l_upper`, highest first (ties by snapshot id), at most
`max_snapshots`; a continuation the expert does not finish successfully teaches no recovery and
is dropped. Overlapping continuations (snapshots of one episode a step apart) give identical
pairs; each pair is kept once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from teachable.evaluation import EvalConfig
from teachable.policy.expert import ExpertPolicy
from teachable.prompting import Context, completion_text, render_prompt
from teachable.records import LabeledSnapshot, Record, Trajectory
from teachable.rollouts import EpisodeSpec, run_episodes
from webshop_env.env import Shop

log = logging.getLogger(__name__)


class RecoveryError(ValueError):
    """No labeled snapshot qualifies for recovery trajectories."""


@dataclass
class RecoveryExample(Record):
    """One step of an expert continuation from a failure snapshot, as a prompt-completion pair.

    Attributes:
        example_id: `<snapshot id>:<step>`.
        snapshot_id: the failure snapshot the continuation starts from.
        goal_idx: the goal of the episode.
        step: the step's index in the continuation (0: the action at the snapshot itself).
        prompt: the rendered prompt.
        completion: ` <action>`, what the model is trained to produce.
        action: the expert's action.
        l_upper: the snapshot's `L_upper`.
    """

    example_id: str
    snapshot_id: str
    goal_idx: int | None
    step: int
    prompt: str
    completion: str
    action: str
    l_upper: float


@dataclass
class RecoveryConfig:
    """Which failure snapshots the expert continues (the `recovery` phase; its adapter is trained
    with a `LoraRecipe` and compared with the base under an `EvalConfig`)."""

    min_l_upper: float = field(default=0.5, metadata={"help": "snapshots with L_upper = p_expert - p_policy at least this are continued by the expert"})
    max_snapshots: int = field(default=0, metadata={"help": "continue at most this many snapshots, highest L_upper first (0: all that qualify)"})

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_l_upper <= 1.0:
            raise ValueError(f"min_l_upper is a difference of two rates and must lie in [-1, 1], got {self.min_l_upper}.")
        if self.max_snapshots < 0:
            raise ValueError(f"max_snapshots must be >= 0 (0: all), got {self.max_snapshots}.")


def l_upper(record: LabeledSnapshot) -> float | None:
    """The snapshot's `L_upper` value, None when it was not labeled."""
    value = record.leverage.get("L_upper", {}).get("value")
    return None if value is None else float(value)


def recovery_snapshots(records: Sequence[LabeledSnapshot], min_l_upper: float, max_snapshots: int = 0,
                       max_steps: int | None = None) -> list[LabeledSnapshot]:
    """The snapshots to continue: `L_upper >= min_l_upper`, highest first, at most `max_snapshots`.

    Args:
        records: the labeled snapshots.
        min_l_upper: the threshold.
        max_snapshots: the cap (0: no cap).
        max_steps: the episode step limit; snapshots at or past it have no action left.

    Raises:
        RecoveryError: no snapshot qualifies (the message gives the highest L_upper found).
    """
    labeled = [(l_upper(r), r) for r in records]
    labeled = [(v, r) for v, r in labeled if v is not None and (max_steps is None or r.step_index < max_steps)]
    chosen = sorted(((v, r) for v, r in labeled if v >= min_l_upper), key=lambda vr: (-vr[0], vr[1].snapshot_id))
    if not chosen:
        best = max((v for v, _ in labeled), default=None)
        found = f"the highest is {best:.2f}" if best is not None else "none has an L_upper label"
        raise RecoveryError(f"no labeled snapshot has L_upper >= {min_l_upper} ({found} over {len(records)} snapshots); "
                            "lower min_l_upper or label more snapshots.")
    return [r for _, r in (chosen[:max_snapshots] if max_snapshots else chosen)]


def expert_continuations(shop: Shop, snapshots: Sequence[LabeledSnapshot], *, max_steps: int, batch_size: int = 64,
                         success_threshold: float = 1.0, expert: ExpertPolicy | None = None) -> list[Trajectory]:
    """The expert's episode from each snapshot's restored state (one per snapshot, in order)."""
    specs = [EpisodeSpec(traj_id=f"recovery:{s.snapshot_id}", seed=0, state=s.state, history=tuple(s.history))
             for s in snapshots]
    return run_episodes(shop, expert or ExpertPolicy(shop), specs, max_steps=max_steps, batch_size=batch_size,
                        greedy=True, success_threshold=success_threshold)


def plain_completion(ctx: Context, action: str) -> str:
    """The completion of `action` for a student that names products by their ids."""
    return completion_text(action)


def recovery_examples(snapshots: Sequence[LabeledSnapshot], continuations: Sequence[Trajectory],
                      render: Callable[[Context], str] = render_prompt,
                      complete: Callable[[Context, str], str] = plain_completion
                      ) -> tuple[list[RecoveryExample], dict[str, int]]:
    """Step-level prompt-completion pairs of the successful continuations.

    Args:
        snapshots: the snapshots the continuations start from.
        continuations: `expert_continuations(snapshots)`, in the same order.
        render: turns a context into the prompt (the student's `LMPolicy.prompt`).
        complete: the completion of an action at a context (the student's `LMPolicy.completion`).

    Returns:
        The examples (each distinct prompt-completion pair once) and counts: n_snapshots,
        n_recovered (continuations that succeed), n_steps, n_examples.
    """
    examples: list[RecoveryExample] = []
    seen: set[tuple[str, str]] = set()
    recovered = steps = 0
    for snap, trajectory in zip(snapshots, continuations, strict=True):
        if not trajectory.success:
            continue
        recovered += 1
        history = list(snap.history)
        for i, step in enumerate(trajectory.steps):
            ctx = Context(instruction=snap.goal["instruction_text"], observation=step.observation,
                          valid_actions=tuple(step.valid_actions), has_search_bar=step.has_search_bar,
                          history=tuple(history))
            history.append(step.action)
            steps += 1
            pair = (render(ctx), complete(ctx, step.action))
            if step.invalid or pair in seen:
                continue
            seen.add(pair)
            examples.append(RecoveryExample(example_id=f"{snap.snapshot_id}:{i}", snapshot_id=snap.snapshot_id,
                                            goal_idx=snap.goal_idx, step=i, prompt=pair[0], completion=pair[1],
                                            action=step.action, l_upper=float(l_upper(snap) or 0.0)))
    counts = {"n_snapshots": len(snapshots), "n_recovered": recovered, "n_steps": steps, "n_examples": len(examples)}
    return examples, counts


def export_recovery(records: Sequence[LabeledSnapshot], shop: Shop, config: RecoveryConfig, episodes: EvalConfig,
                    render: Callable[[Context], str] = render_prompt,
                    complete: Callable[[Context, str], str] = plain_completion
                    ) -> tuple[list[RecoveryExample], dict[str, Any]]:
    """Select the high-L_upper snapshots, continue them with the expert (episodes as `episodes`
    plays them: its max_steps, batch_size, success_threshold) and return the examples.

    Raises:
        RecoveryError: no snapshot qualifies, or the expert recovers from none of them.
    """
    snapshots = recovery_snapshots(records, config.min_l_upper, config.max_snapshots, episodes.max_steps)
    continuations = expert_continuations(shop, snapshots, max_steps=episodes.max_steps, batch_size=episodes.batch_size,
                                         success_threshold=episodes.success_threshold)
    examples, counts = recovery_examples(snapshots, continuations, render, complete)
    if not examples:
        raise RecoveryError(f"the expert recovers from none of the {len(snapshots)} snapshots with L_upper >= "
                            f"{config.min_l_upper} within max_steps={episodes.max_steps}; raise max_steps or min_l_upper.")
    log.info("recovery: %s", counts)
    return examples, counts
