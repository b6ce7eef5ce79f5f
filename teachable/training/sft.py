"""LoRA supervised fine-tuning of a student on (prompt, completion) pairs, through TRL's `SFTTrainer`.

The loss is on the completion tokens only, and the tokens are exactly those `LMPolicy` scores:
the prompt is encoded with `LMPolicy.encode_prompts` (`<s>` first for a plain tokenizer; a chat
template carries its own), the completion with `LMPolicy.encode_completions` (no special tokens),
and the two id lists are concatenated, with no end-of-sequence token after the completion
(the policy never scores one). TRL's own text prompt-completion path would tokenize
`prompt + completion` as one string (a token can merge across the boundary) and append EOS, so
the examples reach TRL pre-tokenized, as `input_ids` plus a `completion_mask`; with
`completion_only_loss=True` TRL turns the mask into labels that are -100 on the prompt.

`train_lora` trains a new adapter (or continues `adapter_init`) and saves only the adapter,
the tokenizer, the base model's prompt settings (`teachable_policy.json`) and
`adapter_meta.json` (the adapter's one provenance file: its base, with the base's kind, revision
and content fingerprint, the training settings and outcome) into `out_dir`; load it with
`LMPolicy.from_pretrained(base, adapter=out_dir)`, after `check_adapter_base`.
`micro_update` is the same path for a step or two on one snapshot's examples.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from teachable.models import (
    SMOLLM2_PRESET,
    is_hub_id,
    load_model,
    model_fingerprint,
    model_reference,
    resolve_device,
)
from teachable.policy.lm import SETTINGS_FILE, LMPolicy

logger = logging.getLogger(__name__)

META_FILE = "adapter_meta.json"
META_SCHEMA_VERSION = 2
TRAIN_METHODS = ("lora", "full")


@dataclass
class SFTSettings:
    """Hyperparameters of one LoRA SFT run (defaults suit a small model on CPU)."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank (ignored when continuing an adapter)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha (ignored when continuing an adapter)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input, in [0, 1)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate (linear decay, no warm-up)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the examples; used when max_steps is -1."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; when > 0 it overrides epochs."})
    batch_size: int = field(default=8, metadata={"help": "Examples per device batch."})
    grad_accum: int = field(default=1, metadata={"help": "Batches accumulated per optimizer step."})
    seed: int = field(default=0, metadata={"help": "Seed of the LoRA initialisation, dropout and data order."})
    max_length: int = field(default=1024, metadata={
        "help": "Most tokens of prompt + completion; longer examples lose the oldest prompt tokens."})
    logging_steps: int = field(default=5, metadata={"help": "Log the training loss every this many steps."})
    disable_tqdm: bool = field(default=False, metadata={"help": "Hide the progress bar."})
    method: str = field(default="lora", metadata={
        "help": "lora (a LoRA adapter on all linear layers; the base stays frozen) or full (every weight: "
                "for a small model trained from scratch)."})
    warmup: float = field(default=0.0, metadata={"help": "Linear warm-up: a fraction of the steps in [0, 1)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batch examples of similar length together (less padding; the order is still seeded)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory for large models, about 30% slower."})

    def __post_init__(self) -> None:
        checks = [
            (self.lora_r >= 1, f"lora_r={self.lora_r} must be >= 1"),
            (self.lora_alpha > 0, f"lora_alpha={self.lora_alpha} must be > 0"),
            (0 <= self.lora_dropout < 1, f"lora_dropout={self.lora_dropout} must be in [0, 1)"),
            (self.learning_rate > 0, f"learning_rate={self.learning_rate} must be > 0"),
            (self.max_steps == -1 or self.max_steps >= 1,
             f"max_steps={self.max_steps} must be -1 (train for `epochs`) or >= 1"),
            (self.max_steps >= 1 or (self.epochs > 0 and math.isfinite(self.epochs)),
             f"epochs={self.epochs} must be a positive number when max_steps is -1"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1"),
            (self.grad_accum >= 1, f"grad_accum={self.grad_accum} must be >= 1"),
            (self.seed >= 0, f"seed={self.seed} must be >= 0"),
            (self.max_length >= 2, f"max_length={self.max_length} must be >= 2 (a prompt token and a completion token)"),
            (self.logging_steps >= 1, f"logging_steps={self.logging_steps} must be >= 1"),
            (self.method in TRAIN_METHODS, f"method={self.method!r} must be one of {TRAIN_METHODS}"),
            (0 <= self.warmup < 1, f"warmup={self.warmup} must be a fraction in [0, 1)"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0"),
        ]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError("invalid SFTSettings: " + "; ".join(errors) + ".")



@dataclass
class LoraRecipe:
    """The LoRA SFT recipe every adapter is trained with: the matrix cells, select, recovery and
    micro-training (each phase with its own defaults) and the student's LoRA clone of a
    pretrained base. `sft_settings` adds the seed and the trainer-level settings of a phase."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    learning_rate: float = field(default=2e-3, metadata={"help": "learning rate"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the examples"})
    train_steps: int = field(default=-1, metadata={"help": "optimiser steps (overrides epochs when > 0)"})
    train_batch_size: int = field(default=8, metadata={"help": "examples per optimiser step"})

    def __post_init__(self) -> None:
        self.sft_settings(seed=0)  # SFTSettings checks every value

    def sft_settings(self, seed: int, **trainer: Any) -> SFTSettings:
        """The SFT hyperparameters of this recipe with `seed`; `trainer` sets (or overrides) any
        other `SFTSettings` field (validated by `SFTSettings`)."""
        recipe = {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout,
                  "learning_rate": self.learning_rate, "epochs": self.epochs, "max_steps": self.train_steps,
                  "batch_size": self.train_batch_size, "seed": seed, "disable_tqdm": True}
        return SFTSettings(**{**recipe, **trainer})


def train_lora(base_model: str, examples: Sequence[tuple[str, str]], out_dir: str | Path,
               settings: SFTSettings, *, adapter_init: str | None = None, report_to: str = "none",
               run_name: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Train a LoRA adapter on `examples` with completion-only loss and save it to `out_dir`.

    Args:
        base_model: a local model folder (written by `save_pretrained`) or the preset "smollm2".
        examples: (prompt text, completion text) pairs, e.g. `(policy.prompt(ctx), completion_text(action))`.
        out_dir: where the adapter is written (created if missing; existing files are overwritten).
        settings: the hyperparameters.
        adapter_init: an adapter folder to continue training from (its rank, alpha, dropout and
            target modules are kept; `settings.lora_*` are then not used).
        report_to: TRL's `report_to` ("none", "mlflow", "tensorboard", ...).
        run_name: the run name given to the reporting integration.
        device: "cpu", "cuda", ...; None picks cuda when available. On CUDA the base model is
            loaded and trained in bfloat16 where supported.

    Returns:
        Metrics: `train_loss` (the loss of the last logged window, which always ends at the
        last step), `mean_train_loss` (the run's mean), `losses` and `loss_steps` (every logged
        loss and the step it was logged at), `n_examples`, `n_truncated`, `steps`, `seconds`.

    Raises:
        ValueError: no examples, an empty completion, or a completion longer than `max_length`.
        FileNotFoundError: `base_model` or `adapter_init` is not a local folder of that kind.
        PermissionError: `out_dir` cannot be written.
    """
    start = time.perf_counter()
    if settings.method != "lora":
        raise ValueError(f"train_lora trains a LoRA adapter; settings.method={settings.method!r} (use fit for full training).")
    out = _writable_dir(out_dir)
    dev = resolve_device(device)
    dtype = "bfloat16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    model, tokenizer = load_model(base_model, device=str(dev), dtype=dtype)
    trained, metrics = fit(model, tokenizer, examples, out, settings, adapter_init=adapter_init,
                           report_to=report_to, run_name=run_name)
    _save(trained, tokenizer, out, base_model=base_model, adapter_init=adapter_init, settings=settings,
          metrics=metrics)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def fit(model: Any, tokenizer: Any, examples: Sequence[tuple[str, str]], out_dir: str | Path, settings: SFTSettings,
        *, adapter_init: str | None = None, report_to: str = "none", run_name: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Train `model` in place on (prompt, completion) pairs with completion-only loss through TRL's
    `SFTTrainer`: a LoRA adapter (`settings.method="lora"`) or every weight (`"full"`).

    This is the one training path: adapters, micro-updates and the student's behaviour cloning
    (LoRA on a pretrained base, full training of the tiny model) all go through it.

    Returns:
        (the trained model: a `PeftModel` for LoRA, else `model`; metrics as `train_lora` returns
        them, without `seconds`).

    Raises:
        ValueError: no examples, an empty completion, or a completion longer than `max_length`.
    """
    examples = _check_examples(examples)
    input_ids, completion_mask, n_truncated = encode_examples(model, tokenizer, examples, settings.max_length)
    with _global_rngs_restored():  # the Trainer seeds the global RNGs; leave the caller's as they were
        trainer = build_trainer(model, tokenizer, input_ids, completion_mask, out_dir, settings,
                                adapter_init=adapter_init, report_to=report_to, run_name=run_name)
        result = trainer.train()
    logged = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    metrics: dict[str, Any] = {
        "train_loss": logged[-1][1] if logged else float(result.training_loss),
        "mean_train_loss": float(result.training_loss),
        "losses": [loss for _, loss in logged], "loss_steps": [step for step, _ in logged],
        "n_examples": len(examples), "n_truncated": n_truncated, "steps": int(trainer.state.global_step),
    }
    logger.info("trained %s on %d examples in %d steps: loss %.4f -> %s", out_dir, len(examples), metrics["steps"],
                metrics["losses"][0] if logged else float("nan"), f"{metrics['train_loss']:.4f}")
    trained = trainer.model
    trained.eval()
    return trained, metrics


def build_trainer(model: Any, tokenizer: Any, input_ids: Sequence[list[int]], completion_mask: Sequence[list[int]],
                  out_dir: str | Path, settings: SFTSettings, *, adapter_init: str | None = None,
                  report_to: str = "none", run_name: str | None = None) -> Any:
    """TRL's `SFTTrainer` for pre-tokenized examples (see `encode_examples`): a LoRA adapter on `model`,
    or `model` itself with `settings.method="full"`.

    The loss is on the tokens where `completion_mask` is 1 (TRL's labels are -100 elsewhere).
    Mixed precision follows the model: bfloat16 when it is on CUDA in bfloat16, else float32.
    The Trainer seeds the global Python, NumPy and torch RNGs with `settings.seed`.

    Args:
        model: the base causal LM (not yet wrapped by peft), on its training device.
        tokenizer: its tokenizer (saved with the adapter; its pad token pads the batches).
        input_ids: token ids of each prompt + completion.
        completion_mask: 1 on each completion token, 0 on the prompt.
        out_dir: the Trainer's output folder (nothing is checkpointed there).
        settings, adapter_init, report_to, run_name: as in `train_lora`.

    Returns:
        The `trl.SFTTrainer`; its `model` is the `PeftModel` being trained.
    """
    from datasets import Dataset
    from trl import SFTConfig

    on_cpu = next(model.parameters()).device.type == "cpu"
    config = SFTConfig(
        output_dir=str(out_dir), run_name=run_name, report_to=report_to,
        learning_rate=settings.learning_rate, num_train_epochs=settings.epochs, max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        seed=settings.seed, data_seed=settings.seed, logging_steps=settings.logging_steps,
        disable_tqdm=settings.disable_tqdm, save_strategy="no", dataloader_num_workers=0,
        use_cpu=on_cpu, bf16=not on_cpu and model.dtype == torch.bfloat16, fp16=False,
        # `gradient_checkpointing` is its deprecated alias (TRL's default: on); it pays only for large models
        activation_checkpointing=settings.gradient_checkpointing,
        warmup_steps=settings.warmup, weight_decay=settings.weight_decay,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        completion_only_loss=True,
        max_length=None,  # encode_examples has cut long examples from the left of the prompt
    )
    dataset = Dataset.from_dict({"input_ids": [list(x) for x in input_ids],
                                 "completion_mask": [list(x) for x in completion_mask]})
    trained = model if settings.method == "full" else _with_adapter(model, settings, adapter_init)
    if settings.method == "full":
        model.train()
    return _completion_trainer()(model=trained, args=config, train_dataset=dataset,
                                 processing_class=tokenizer, callbacks=[_LogLastStep()])


def _completion_trainer() -> type:
    """`SFTTrainer` whose loss projects only the completion positions through the LM head.

    TRL's own loss goes through a fused LM head that, on devices without Triton (a CPU), scores
    every position of the batch in float32 tiles, forward and backward, with entropy and top-1
    metrics on top: 60% of a step of the tiny student. The loss is the same mean negative
    log-likelihood of the completion tokens; only the positions that carry it are projected.
    Models whose logits are scaled or soft-capped keep TRL's loss.
    """
    import torch.nn.functional as F
    from trl import SFTTrainer

    class CompletionSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            config = base.config.get_text_config()
            if return_outputs or any(getattr(config, name, None) not in (None, 1.0) for name in (
                    "final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                    "logits_scaling")) or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"][:, 1:]
            keep = labels != -100
            hidden = base.get_decoder()(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                        use_cache=False).last_hidden_state[:, :-1]
            logits = base.get_output_embeddings()(hidden[keep]).float()
            total = F.cross_entropy(logits, labels[keep], reduction="sum")
            count = keep.sum() if num_items_in_batch is None else num_items_in_batch
            return total / torch.as_tensor(count, device=total.device).clamp(min=1)

    return CompletionSFTTrainer


def micro_update(base_model: str, examples: Sequence[tuple[str, str]], out_dir: str | Path, *, steps: int = 1,
                 settings: SFTSettings | None = None, adapter_init: str | None = None, report_to: str = "none",
                 run_name: str | None = None, device: str | None = None) -> dict[str, Any]:
    """A tiny update: `steps` optimizer steps over one snapshot's few examples, each step on all of them
    (up to `settings.batch_size`), through `train_lora`.

    Args:
        steps: optimizer steps (usually 1 or 2).
        settings: the other hyperparameters (default `SFTSettings()`); `max_steps`,
            `logging_steps` and `batch_size` are set here.
        (others as in `train_lora`)

    Returns:
        `train_lora`'s metrics.

    Raises:
        ValueError: `steps` < 1, and whatever `train_lora` raises.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1.")
    settings = settings or SFTSettings()
    settings = replace(settings, max_steps=steps, logging_steps=1,
                       batch_size=max(1, min(settings.batch_size, len(examples))))
    return train_lora(base_model, examples, out_dir, settings, adapter_init=adapter_init, report_to=report_to,
                      run_name=run_name, device=device)


def encode_examples(model: Any, tokenizer: Any, examples: Sequence[tuple[str, str]],
                    max_length: int) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids and completion masks of (prompt, completion) pairs, tokenized as `LMPolicy` scores them.

    An example longer than `max_length` loses the oldest prompt tokens (a leading `<s>` is kept).

    Returns:
        (input ids, completion masks (1 on completion tokens), how many examples were cut).

    Raises:
        ValueError: a completion that tokenizes to nothing or does not fit in `max_length`.
    """
    # The policy's encoders are the one definition of how prompts and completions are tokenized;
    # "expand" skips the attention check that only matters for scoring.
    policy = LMPolicy(model, tokenizer, candidate_layout="expand")
    prompts = policy.encode_prompts([p for p, _ in examples])
    completions = policy.encode_completions([c for _, c in examples])
    bos = tokenizer.bos_token_id
    input_ids, masks, n_truncated = [], [], 0
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        if not completion:
            raise ValueError(f"example {i}: the completion {examples[i][1]!r} tokenizes to no tokens.")
        keep_first = int(bool(prompt) and prompt[0] == bos)
        room = max_length - len(completion) - keep_first
        if room < 1:
            raise ValueError(f"example {i}: the completion has {len(completion)} tokens, which leaves no room for "
                             f"the prompt within max_length={max_length}; raise max_length.")
        if len(prompt) + len(completion) > max_length:
            prompt = prompt[:keep_first] + prompt[len(prompt) - room:]
            n_truncated += 1
        input_ids.append(prompt + completion)
        masks.append([0] * len(prompt) + [1] * len(completion))
    if n_truncated:
        logger.warning("%d of %d examples were longer than max_length=%d tokens and lost the start of their "
                       "prompt; the policy will see the whole prompt", n_truncated, len(examples), max_length)
    return input_ids, masks, n_truncated


def _check_examples(examples: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out = list(examples)
    if not out:
        raise ValueError("train_lora got no examples; pass (prompt, completion) pairs, e.g. from the supervision formats.")
    for i, example in enumerate(out):
        if (not isinstance(example, tuple | list) or len(example) != 2
                or not all(isinstance(text, str) for text in example)):
            raise ValueError(f"example {i} is not a (prompt text, completion text) pair: {example!r:.200}")
        if not example[1].strip():
            raise ValueError(f"example {i} has an empty completion; the completion is the action text, "
                             "e.g. ' click[buy now]'.")
    return [(p, c) for p, c in out]


def _writable_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise PermissionError(f"out_dir {str(out)!r} is not a writable folder ({err}); "
                              "pass a folder you can write to.") from err
    return out


def _with_adapter(model: Any, settings: SFTSettings, adapter_init: str | None) -> Any:
    """`model` wrapped with a new LoRA adapter (initialised from `settings.seed` alone) or `adapter_init`, trainable."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_init is not None:
        folder = Path(adapter_init).expanduser()
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter_init {adapter_init!r} is not a LoRA adapter folder (no "
                                    "adapter_config.json); pass a folder written by train_lora.")
    config = LoraConfig(task_type="CAUSAL_LM", target_modules="all-linear", r=settings.lora_r,
                        lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout)
    with warnings.catch_warnings():
        # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing`; nothing to act on here
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        if adapter_init is not None:
            return PeftModel.from_pretrained(model, str(folder), is_trainable=True)
        # peft draws lora_A from the global torch RNG, which the Trainer seeds only after wrapping
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            return get_peft_model(model, config)


def _save(model: Any, tokenizer: Any, out: Path, *, base_model: str, adapter_init: str | None,
          settings: SFTSettings, metrics: dict[str, Any]) -> None:
    """Write the adapter (not the base weights), the tokenizer, the prompt settings and `adapter_meta.json`."""
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # The prompt settings the policy is to be prompted with: the base's, unless the continued adapter had its own.
    sources = [] if base_model == SMOLLM2_PRESET else [Path(base_model).expanduser() / SETTINGS_FILE]
    if adapter_init is not None:
        sources.append(Path(adapter_init).expanduser() / SETTINGS_FILE)
    existing = [s for s in sources if s.is_file()]
    if existing and existing[-1].resolve() != (out / SETTINGS_FILE).resolve():
        shutil.copyfile(existing[-1], out / SETTINGS_FILE)
    is_folder = base_model != SMOLLM2_PRESET and not is_hub_id(base_model)
    meta = {
        "schema_version": META_SCHEMA_VERSION,
        "base_model": str(Path(base_model).expanduser().resolve()) if is_folder else base_model,
        "base": model_reference(base_model),
        "adapter_init": str(Path(adapter_init).expanduser().resolve()) if adapter_init else None,
        "n_examples": metrics["n_examples"], "n_truncated": metrics["n_truncated"], "steps": metrics["steps"],
        "train_loss": metrics["train_loss"], "mean_train_loss": metrics["mean_train_loss"],
        "settings": asdict(settings),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter folder records (as `train_lora` was given it, a folder resolved).

    Raises:
        FileNotFoundError: the folder has no `adapter_meta.json` (it was not written by `train_lora`).
    """
    meta = Path(adapter_dir) / META_FILE
    if not meta.is_file():
        raise FileNotFoundError(f"{adapter_dir} is not an adapter folder written by train_lora (no {META_FILE}).")
    return json.loads(meta.read_text())["base_model"]


def check_adapter_base(adapter_dir: str | Path, base_model: str) -> None:
    """Refuse an adapter trained on another base model than `base_model` (a copy of the same
    base, e.g. a fresh download, is the same: the content fingerprints are compared).

    Raises:
        ValueError: the adapter records another base model's fingerprint.
    """
    meta = Path(adapter_dir) / META_FILE
    recorded = json.loads(meta.read_text()).get("base") if meta.is_file() else None
    if recorded is None:
        logger.warning("adapter %s does not record its base model's fingerprint; it is assumed to match %s",
                       adapter_dir, base_model)
        return
    if recorded["fingerprint"] != model_fingerprint(base_model):
        raise ValueError(f"adapter {adapter_dir} was trained on another base model ({recorded['id']}) than the "
                         f"evaluated base {base_model}; evaluate it with its own base or retrain it.")


class _LogLastStep(TrainerCallback):
    """Log at the last step too, so that the final loss is always in the history."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control


@contextmanager
def _global_rngs_restored() -> Iterator[None]:
    """Run a block that seeds Python's, NumPy's and torch's global RNGs, then put them back."""
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
