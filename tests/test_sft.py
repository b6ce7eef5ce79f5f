"""LoRA SFT through TRL: the loss falls, the adapter saves and loads as a policy and moves the scores
the trained way, the loss is on completion tokens only (tokenized as LMPolicy scores them),
runs are deterministic, an adapter can be continued, and bad inputs fail clearly."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from teachable.models import build_tiny_llama, load_model, train_bpe_tokenizer
from teachable.policy.lm import SETTINGS_FILE, LMPolicy
from teachable.prompting import Context, completion_text
from teachable.training.sft import (
    META_FILE,
    SFTSettings,
    adapter_base,
    build_trainer,
    check_adapter_base,
    encode_examples,
    micro_update,
    train_lora,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLORS = ("red", "navy blue", "black", "white")
ITEMS = ("running shoes", "green tea", "yoga mat", "leather sofa")
ACTIONS = ("click[back to search]", "click[< prev]", "click[buy now]")
TARGET = "click[buy now]"
SETTINGS = SFTSettings(max_steps=6, batch_size=4, learning_rate=1e-2, logging_steps=1, disable_tqdm=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def item_page(i: int) -> Context:
    color, item = COLORS[i % 4], ITEMS[i // 4 % 4]
    return Context(instruction=f"i need {color} {item}, price lower than {20 + i}.00 dollars",
                   observation=f"Back to Search [SEP] < Prev [SEP] {color.title()} {item.title()} "
                               f"[SEP] Price: ${10 + i}.99 [SEP] Buy Now",
                   valid_actions=ACTIONS, history=("search[" + item + "]", f"click[b0item{i:04d}]"))


@pytest.fixture(scope="module")
def contexts() -> list[Context]:
    return [item_page(i) for i in range(16)]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory, contexts: list[Context]) -> Path:
    """A tiny Llama saved as a policy with non-default prompt settings."""
    texts = [f"Task: {c.instruction}\nObservation: {c.observation}\nAction: {a}"
             for c in contexts for a in ACTIONS]
    texts += [f"Previous actions: {' | '.join(c.history)}" for c in contexts]
    tokenizer = train_bpe_tokenizer(texts * 2, vocab_size=400)
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=3)
    out = tmp_path_factory.mktemp("base")
    LMPolicy(model, tokenizer, max_history=1).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def base_policy(base_dir: Path) -> LMPolicy:
    return LMPolicy.from_pretrained(str(base_dir), device="cpu")


@pytest.fixture(scope="module")
def examples(base_policy: LMPolicy, contexts: list[Context]) -> list[tuple[str, str]]:
    return [(base_policy.prompt(ctx), completion_text(TARGET)) for ctx in contexts]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, base_dir: Path,
            examples: list[tuple[str, str]]) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("adapter")
    return out, train_lora(str(base_dir), examples, out, SETTINGS, device="cpu")


def adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def test_training_lowers_the_loss_and_saves_only_the_adapter(trained, base_dir: Path) -> None:
    out, metrics = trained
    assert metrics["steps"] == 6 and metrics["n_examples"] == 16 and metrics["n_truncated"] == 0
    assert metrics["loss_steps"] == [1, 2, 3, 4, 5, 6]
    assert metrics["losses"][-1] < metrics["losses"][0]
    assert metrics["train_loss"] == metrics["losses"][-1]
    assert metrics["seconds"] > 0
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", SETTINGS_FILE, META_FILE} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin", "config.json"}
    assert not any(p.is_dir() for p in out.iterdir())  # no checkpoints
    assert all("lora_" in name for name in adapter_tensors(out))
    assert (out / SETTINGS_FILE).read_text() == (base_dir / SETTINGS_FILE).read_text()
    meta = json.loads((out / META_FILE).read_text())
    assert meta["base_model"] == str(base_dir.resolve()) and meta["adapter_init"] is None
    assert meta["n_examples"] == 16 and meta["train_loss"] == pytest.approx(metrics["train_loss"])
    assert meta["settings"] == {**vars(SETTINGS)}
    assert meta["base"]["kind"] == "folder" and meta["base"]["id"] == str(base_dir.resolve())
    assert adapter_base(out) == str(base_dir.resolve())


def test_an_adapter_is_refused_on_another_base(trained, base_dir: Path, tmp_path: Path) -> None:
    import shutil

    out, _ = trained
    assert {p.name for p in out.iterdir()} & {"base_model.json"} == set()  # one provenance file
    copy = tmp_path / "copy_of_base"
    shutil.copytree(base_dir, copy)
    check_adapter_base(out, str(copy))  # a copy of the same base (e.g. a fresh download) is fine
    config = json.loads((copy / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trained on another base model"):
        check_adapter_base(out, str(copy))
    with pytest.raises(FileNotFoundError, match="not an adapter folder"):
        adapter_base(tmp_path)


def test_the_adapter_raises_the_trained_completion(trained, base_dir: Path, base_policy: LMPolicy,
                                                   contexts: list[Context]) -> None:
    out, _ = trained
    tuned = LMPolicy.from_pretrained(str(base_dir), adapter=str(out), device="cpu")
    assert tuned.max_history == 1  # prompted as the base model was
    assert [tuned.prompt(c) for c in contexts] == [base_policy.prompt(c) for c in contexts]
    before, after = base_policy.action_scores(contexts), tuned.action_scores(contexts)
    p_before = base_policy.action_distribution(contexts)
    p_after = tuned.action_distribution(contexts)
    for b, a, pb, pa in zip(before, after, p_before, p_after, strict=True):
        assert a[TARGET] > b[TARGET]
        assert pa[TARGET] > pb[TARGET]


def test_loss_is_on_completion_tokens_only_tokenized_as_the_policy_scores(
        base_dir: Path, base_policy: LMPolicy, examples: list[tuple[str, str]], tmp_path: Path) -> None:
    model, tokenizer = load_model(str(base_dir), device="cpu")
    input_ids, masks, n_cut = encode_examples(model, tokenizer, examples, max_length=1024)
    assert n_cut == 0
    prompts = base_policy.encode_prompts([p for p, _ in examples])
    completions = base_policy.encode_completions([c for _, c in examples])
    for ids, mask, p, c in zip(input_ids, masks, prompts, completions, strict=True):
        assert p[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in c
        assert ids == p + c and mask == [0] * len(p) + [1] * len(c)

    trainer = build_trainer(model, tokenizer, input_ids, masks, tmp_path, SETTINGS)
    batch = next(iter(trainer.get_train_dataloader()))
    seen = 0
    for ids, labels, attention in zip(batch["input_ids"].tolist(), batch["labels"].tolist(),
                                      batch["attention_mask"].tolist(), strict=True):
        row = input_ids.index(ids[:sum(attention)])  # which example (prompts differ)
        n_prompt, n_comp = len(prompts[row]), len(completions[row])
        assert labels[:n_prompt] == [-100] * n_prompt
        assert labels[n_prompt:n_prompt + n_comp] == completions[row]
        assert set(labels[n_prompt + n_comp:]) <= {-100}  # padding
        seen += 1
    assert seen == SETTINGS.batch_size

    # A fresh adapter is the identity (lora_B = 0), so TRL's loss is the policy's mean completion NLL.
    rows = [input_ids.index(ids[:sum(att)]) for ids, att in zip(batch["input_ids"].tolist(),
                                                              batch["attention_mask"].tolist(), strict=True)]
    trainer.model.eval()
    with torch.no_grad():
        loss = float(trainer.compute_loss(trainer.model, dict(batch)))
    scores = base_policy.action_scores([item_page(r) for r in rows])
    expected = -sum(s[TARGET] for s in scores) / sum(len(completions[r]) for r in rows)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_long_examples_lose_the_start_of_the_prompt(base_dir: Path, examples: list[tuple[str, str]]) -> None:
    model, tokenizer = load_model(str(base_dir), device="cpu")
    (full,), _, _ = encode_examples(model, tokenizer, examples[:1], max_length=1024)
    (cut,), (mask,), n_cut = encode_examples(model, tokenizer, examples[:1], max_length=20)
    n_comp = sum(mask)
    assert n_cut == 1 and len(cut) == 20
    assert cut[0] == tokenizer.bos_token_id and cut[1:] == full[-19:] and mask == [0] * (20 - n_comp) + [1] * n_comp
    with pytest.raises(ValueError, match="max_length=3"):
        encode_examples(model, tokenizer, [("a prompt", " click[back to search]")], max_length=3)


def test_training_is_deterministic_and_leaves_the_global_rng(trained, base_dir: Path,
                                                             examples: list[tuple[str, str]],
                                                             tmp_path: Path) -> None:
    out, metrics = trained
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    again = train_lora(str(base_dir), examples, tmp_path, SETTINGS, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert again["losses"] == metrics["losses"]
    first, second = adapter_tensors(out), adapter_tensors(tmp_path)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_adapter_init_continues_training(trained, base_dir: Path, base_policy: LMPolicy,
                                         examples: list[tuple[str, str]], contexts: list[Context],
                                         tmp_path: Path) -> None:
    out, metrics = trained
    result = micro_update(str(base_dir), examples[:3], tmp_path, steps=2, adapter_init=str(out),
                          settings=replace(SETTINGS, learning_rate=1e-3), device="cpu")
    assert result["steps"] == 2 and result["n_examples"] == 3 and result["loss_steps"] == [1, 2]
    # it starts where the trained adapter ended, well below the base model's loss
    assert result["losses"][0] < metrics["losses"][0] - 0.5 * (metrics["losses"][0] - metrics["losses"][-1])
    old, new = adapter_tensors(out), adapter_tensors(tmp_path)
    assert old.keys() == new.keys() and any(not torch.equal(old[k], new[k]) for k in old)
    assert json.loads((tmp_path / META_FILE).read_text())["adapter_init"] == str(out.resolve())
    micro = LMPolicy.from_pretrained(str(base_dir), adapter=str(tmp_path), device="cpu")
    scores, base_scores = micro.action_scores(contexts[:3]), base_policy.action_scores(contexts[:3])
    assert all(s[TARGET] > b[TARGET] for s, b in zip(scores, base_scores, strict=True))


@pytest.mark.parametrize("changes", [{"lora_r": 0}, {"lora_dropout": 1.0}, {"learning_rate": 0.0},
                                     {"max_steps": 0}, {"epochs": 0.0}, {"batch_size": 0}, {"grad_accum": 0},
                                     {"max_length": 1}, {"logging_steps": 0}, {"seed": -1}])
def test_bad_settings_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(changes))}="):
        SFTSettings(**changes)


def test_max_steps_makes_epochs_irrelevant() -> None:
    assert SFTSettings(max_steps=2, epochs=0.0).max_steps == 2


def test_clear_errors(base_dir: Path, examples: list[tuple[str, str]], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no examples"):
        train_lora(str(base_dir), [], tmp_path / "a", SETTINGS)
    with pytest.raises(ValueError, match="empty completion"):
        train_lora(str(base_dir), [("prompt", " ")], tmp_path / "a", SETTINGS)
    with pytest.raises(ValueError, match="not a .prompt text, completion text. pair"):
        train_lora(str(base_dir), ["just a string"], tmp_path / "a", SETTINGS)  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model folder"):
        train_lora(str(tmp_path / "missing"), examples, tmp_path / "a", SETTINGS)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="not a writable folder"):
        train_lora(str(base_dir), examples, blocker / "out", SETTINGS)
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        train_lora(str(base_dir), examples, tmp_path / "a", SETTINGS, adapter_init=str(tmp_path), device="cpu")
    with pytest.raises(ValueError, match="steps=0"):
        micro_update(str(base_dir), examples, tmp_path / "a", steps=0)


def test_the_saved_adapter_reloads_to_identical_logits(base_dir: Path, examples: list[tuple[str, str]],
                                                       tmp_path: Path) -> None:
    from teachable.training.sft import build_trainer, encode_examples

    model, tokenizer = load_model(str(base_dir), device="cpu")
    ids, masks, _ = encode_examples(model, tokenizer, examples[:8], 512)
    trainer = build_trainer(model, tokenizer, ids, masks, tmp_path / "run", replace(SETTINGS, max_steps=5))
    trainer.train()
    probe = torch.tensor([ids[0]])
    trained_model = trainer.model.eval()
    with torch.no_grad():
        in_memory = trained_model(input_ids=probe).logits
    trained_model.save_pretrained(tmp_path / "adapter")
    reloaded, _ = load_model(str(base_dir), device="cpu", adapter=str(tmp_path / "adapter"))
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=probe).logits, in_memory)
        base, _ = load_model(str(base_dir), device="cpu")
        assert not torch.equal(base(input_ids=probe).logits, in_memory)
