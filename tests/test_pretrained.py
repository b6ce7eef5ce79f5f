"""Pretrained students: chat-model folders of two architectures (Llama, Qwen2) made here, loaded
by folder and by hub id from a local Hugging Face cache, LoRA-cloned through the one training
path, registered as references (never copied), and prompted without placeholders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from teachable import models
from teachable.models import (
    REF_FILE,
    ModelNotFoundError,
    load_model,
    model_reference,
    train_bpe_tokenizer,
)
from teachable.policy.lm import LMPolicy, is_placeholder, load_prompt_settings
from teachable.prompting import Context, render_prompt
from teachable.student import StudentConfig, few_shot_examples, train_student

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_chat_model(out: Path, arch: str, shop, pad_token: bool = True) -> Path:
    """A randomly initialised chat model in Hugging Face's format (config, weights, tokenizer with
    a chat template), as a pretrained model's folder looks."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    texts = [p["Title"] for p in shop.catalog.products] + [g["instruction_text"] for g in shop.goals]
    tokenizer = train_bpe_tokenizer(texts + ["<|system|> <|user|> <|assistant|> <|end|> search[ click[ ]"],
                                    vocab_size=500)
    tokenizer.chat_template = CHAT_TEMPLATE
    if not pad_token:
        tokenizer.pad_token = None
    size = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config, cls = (LlamaConfig(**size), LlamaForCausalLM) if arch == "llama" else (Qwen2Config(**size), Qwen2ForCausalLM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cls(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def chat_models(small_shop, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat_models")
    return {arch: make_chat_model(root / arch, arch, small_shop) for arch in ("llama", "qwen2")}


def put_in_hub_cache(folder: Path, cache: Path, repo_id: str) -> str:
    """Lay `folder` out as the Hugging Face cache does (`models--org--name/snapshots/<commit>`)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return commit


def contexts(shop, n: int = 3) -> list[Context]:
    from teachable.prompting import context_from_env
    from webshop_env.env import WebShopEnv

    env, out = WebShopEnv(shop=shop), []
    for g in shop.split_goal_indices("dev")[:n]:
        obs, info = env.reset(options={"goal_idx": g})
        out.append(context_from_env(env, obs, info))
        obs, _, _, _, info = env.step("search[" + shop.goals[g]["instruction_text"][:40] + "]")
        out.append(context_from_env(env, obs, info, ("search[x]",)))
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_batched_scoring_equals_the_reference_for_both_architectures(chat_models, small_shop, arch: str) -> None:
    policy = LMPolicy.from_pretrained(str(chat_models[arch]), device="cpu", list_actions=True)
    clicks = [c for c in contexts(small_shop) if c.valid_actions and not c.has_search_bar]
    for got, ctx in zip(policy.action_scores(clicks), clicks, strict=True):
        want = policy.score_unbatched(ctx)
        assert got.keys() == want.keys()
        assert max(abs(got[a] - want[a]) for a in got) < 1e-4


def test_chat_prompt_has_no_placeholder_and_few_shot_examples(chat_models, small_shop) -> None:
    ctx = contexts(small_shop, 1)[0]
    tokenizer = load_model(str(chat_models["llama"]), device="cpu")[1]
    shots = (("i need red shoes", ("search[i need red shoes]", "click[b0shoe0001]", "click[buy now]")),)
    text = render_prompt(ctx, tokenizer, list_actions=True, few_shot=shots)
    assert text.startswith("<|system|>\n") and "<|user|>\n" in text and text.endswith("<|assistant|>\nAction:")
    assert "Examples of solved tasks:\nTask: i need red shoes\nActions: search[i need red shoes] | click[b0shoe0001]" in text
    assert "<query>" not in text and "search[" not in text.split("Examples of solved tasks:")[0]
    assert "Available actions: search (write the words to look for)" in text


def test_few_shot_examples_are_written_as_the_student_writes_actions(small_shop) -> None:
    shots = few_shot_examples(small_shop, list(small_shop.split_goal_indices("train"))[:16], 2, seed=0, by="reader",
                              alias_products=True)
    assert len(shots) == 2
    asins = {p["asin"].lower() for p in small_shop.catalog.products}
    for _, actions in shots:
        clicks = [a[len("click["):-1] for a in actions if a.startswith("click[")]
        assert actions[0].startswith("search[") and actions[-1] == "click[buy now]"
        assert any(c.startswith("#") for c in clicks)  # the product, by its place on the results page
        assert not any(c.lower() in asins for c in clicks)  # never an id the prompt does not show


@pytest.mark.parametrize("query,bad", [("", True), ("<query>", True), ("  <your query here> ", True), ("...", True),
                                       ("keywords", True), ("a <b> c", True), ("red shoes", False), ("query", True),
                                       ("search query tool", False), ("SEP", True), ("[SEP] Search", True)])
def test_placeholder_queries_are_recognised(query: str, bad: bool) -> None:
    assert is_placeholder(query) is bad


def test_a_placeholder_query_is_rewritten_then_replaced_never_played(chat_models, small_shop) -> None:
    policy = LMPolicy.from_pretrained(str(chat_models["qwen2"]), device="cpu", max_query_tokens=4)
    search = [c for c in contexts(small_shop) if c.has_search_bar]
    policy._generate_chunk = lambda chunk, rngs: ["<query>]"] * len(chunk)  # the model copies the placeholder
    rngs = [np.random.default_rng(i) for i in range(len(search))]
    actions = policy.act(search, rngs)
    assert all(a.startswith("search[") and not is_placeholder(a[7:-1]) for a in actions)
    assert policy.query_stats == {"written": len(search), "rewritten": 2 * len(search), "fallback": len(search)}


def test_hub_id_from_a_local_cache_and_a_clear_error_when_missing(chat_models, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hub"
    commit = put_in_hub_cache(chat_models["llama"], cache, "tiny-org/tiny-chat")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model, tokenizer = load_model("tiny-org/tiny-chat", device="cpu")
    assert tokenizer.chat_template == CHAT_TEMPLATE and model.config.model_type == "llama"
    ref = model_reference("tiny-org/tiny-chat")
    assert ref["kind"] == "hub" and ref["revision"] == commit
    assert ref["fingerprint"] == model_reference(str(chat_models["llama"]))["fingerprint"]  # content, not path
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download other-org/absent"):
        load_model("other-org/absent", device="cpu")


def test_bad_model_folders_get_clear_errors(chat_models, tmp_path: Path, small_shop) -> None:
    empty = tmp_path / "no_weights"
    empty.mkdir()
    (empty / "config.json").write_text((chat_models["llama"] / "config.json").read_text())
    with pytest.raises(ModelNotFoundError, match="no weights"):
        load_model(str(empty))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "absent"))
    no_pad = make_chat_model(tmp_path / "no_pad", "llama", small_shop, pad_token=False)
    _, tokenizer = load_model(str(no_pad), device="cpu")
    assert tokenizer.pad_token == tokenizer.eos_token


def test_a_long_context_is_cut_to_fit_with_a_count(chat_models, small_shop) -> None:
    policy = LMPolicy.from_pretrained(str(chat_models["llama"]), device="cpu")
    policy._max_positions = 700
    ctx = contexts(small_shop, 1)[1]
    long = Context(ctx.instruction, ctx.observation * 20, ctx.valid_actions)
    text = policy.prompt(long)
    assert len(policy.encode_prompts([text])[0]) <= 700 - 64 and policy.prompt_stats["cut"] == 1
    assert ctx.observation[:100] in text
    assert policy.action_scores([long])[0].keys() == set(long.valid_actions)


def cfg(base: str, **kw) -> StudentConfig:
    settings = dict(n_train_goals=6, search_goals=6, eval_goals=2, max_steps=5, train_batch_size=4,
                    max_observation_chars=300, device="cpu")
    return StudentConfig(base_model=base, **{**settings, **kw})


def test_lora_clone_of_a_pretrained_base_is_an_adapter_and_a_reference(chat_models, small_shop, tmp_path: Path) -> None:
    base = str(chat_models["qwen2"])
    out = tmp_path / "student"
    metrics = train_student(cfg(base, train_steps=3, few_shot=1), small_shop, out)
    assert metrics["train_steps"] == 3
    names = {f.name for f in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", REF_FILE} <= names
    assert "model.safetensors" not in names  # the base is referred to, never copied
    recorded = json.loads((out / REF_FILE).read_text())["base"]
    assert recorded["kind"] == "folder" and recorded["id"] == str(Path(base).resolve())
    settings = json.loads((out / "teachable_policy.json").read_text())
    assert len(settings["few_shot"]) == 1 and settings["few_shot"][0][1][0].startswith("search[")
    student = LMPolicy.from_pretrained(str(out), device="cpu")
    plain = LMPolicy.from_pretrained(base, device="cpu")
    ctx = [c for c in contexts(small_shop) if c.valid_actions and not c.has_search_bar][0]
    assert student.action_scores([ctx])[0] != plain.action_scores([ctx])[0]  # the merged LoRA changed it
    assert student.generate_queries([contexts(small_shop, 1)[0]], None, greedy=True)[0].startswith("search[")


def test_a_prompt_renderer_prompts_as_the_policy_without_the_weights(chat_models, small_shop, tiny_student: str,
                                                                    tmp_path: Path, monkeypatch) -> None:
    from transformers import AutoModelForCausalLM

    from teachable.policy.lm import PromptRenderer

    clone = tmp_path / "clone"
    train_student(cfg(str(chat_models["llama"]), train_steps=1, few_shot=1, alias_products=True, list_titles=True),
                  small_shop, clone)
    refs = [str(clone), str(chat_models["qwen2"]), tiny_student]
    policies = {ref: LMPolicy.from_pretrained(ref, device="cpu") for ref in refs}

    def no_weights(*args, **kwargs):
        raise AssertionError("a renderer loaded a model's weights")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_weights)
    ctxs = contexts(small_shop)
    for ref, policy in policies.items():
        renderer = PromptRenderer.from_pretrained(ref)
        assert renderer.prompt_settings() == policy.prompt_settings() and renderer._max_positions == policy._max_positions
        for ctx in ctxs:
            assert renderer.prompt(ctx) == policy.prompt(ctx)
            assert renderer.completions(ctx) == policy.completions(ctx)
    assert PromptRenderer.from_pretrained(str(clone)).alias_products  # the clone's saved settings were read


def test_epochs_zero_uses_the_base_as_it_is(chat_models, small_shop, tmp_path: Path) -> None:
    out = tmp_path / "as_is"
    metrics = train_student(cfg(str(chat_models["llama"]), epochs=0.0), small_shop, out)
    assert "train_steps" not in metrics and {f.name for f in out.iterdir()} >= {REF_FILE, "teachable_policy.json"}
    assert not any(out.glob("*.safetensors"))
    as_is = LMPolicy.from_pretrained(str(out), device="cpu")
    plain = LMPolicy.from_pretrained(str(chat_models["llama"]), device="cpu", **load_prompt_settings(out))
    ctx = [c for c in contexts(small_shop) if c.valid_actions and not c.has_search_bar][0]
    assert as_is.action_scores([ctx]) == plain.action_scores([ctx])


def test_a_changed_base_is_refused(chat_models, small_shop, tmp_path: Path) -> None:
    base = make_chat_model(tmp_path / "base", "llama", small_shop)
    out = tmp_path / "student"
    train_student(cfg(str(base), epochs=0.0, eval_goals=0), small_shop, out)
    make_chat_model(base, "qwen2", small_shop)  # overwritten by another model
    with pytest.raises(ModelNotFoundError, match="has changed"):
        load_model(str(out), device="cpu")


def test_student_phase_registers_a_reference_and_downstream_downloads_once(
        chat_models, small_data_dir: Path, mlflow_store: str, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "MLFLOW_TRACKING_URI": mlflow_store, "HF_HUB_OFFLINE": "1"}
    run = [sys.executable, "-m"]
    student = [*run, "entry_points.student", "--data_dir", str(small_data_dir), "--base_model",
               str(chat_models["llama"]), "--epochs", "0", "--n_train_goals", "4", "--search_goals", "4",
               "--eval_goals", "2", "--max_steps", "4", "--device", "cpu"]
    done = subprocess.run(student, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for _ in range(2):
        rollouts = [*run, "entry_points.rollouts", "--data_dir", str(small_data_dir), "--n_goals", "2",
                    "--max_steps", "3"]
        done = subprocess.run(rollouts, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    version = client.get_model_version("teachable-student", "1")
    assert version.tags["kind"] == "reference"
    store_files = [p.name for p in Path(mlflow_store.removeprefix("sqlite:///")).parent.rglob("*") if p.is_file()]
    assert not any(name.endswith(".safetensors") for name in store_files)  # no copy of the base in the store
    cached = list(Path(os.environ["TEACHABLE_CACHE"]).glob(f"mlflow-artifacts/{version.run_id}/model"))
    assert len(cached) == 1  # one download, reused by the second rollouts run
    left = [p for p in tmp.rglob("*") if p.suffix in (".safetensors", ".json")]
    assert not left, left  # nothing left behind in temp folders


def test_an_uncached_hub_id_stops_the_student_phase_with_the_download_command(
        small_data_dir: Path, mlflow_store: str, tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "entry_points.student", "--data_dir", str(small_data_dir),
                           "--base_model", "Qwen/Qwen2.5-7B-Instruct"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert "student: error:" in done.stderr and "huggingface-cli download Qwen/Qwen2.5-7B-Instruct" in done.stderr
    assert "Traceback" not in done.stderr


def test_models_module_names_its_presets() -> None:
    assert models.is_hub_id("Qwen/Qwen2.5-7B-Instruct") and not models.is_hub_id("smollm2")
