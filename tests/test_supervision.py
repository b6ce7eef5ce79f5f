"""Golden strings of the teaching texts and of the supervision prompts of each format."""

from __future__ import annotations

import pytest

from teachable.policy.teacher.base import TeacherAdvice
from teachable.prompting import completion_text, render_prompt
from teachable.records import LabeledSnapshot
from teachable.supervision import FORMATS, condition_patches, patch_text, placebo_text
from teachable.supervision.examples import SupervisionError, supervision_pair

ADVICE = TeacherAdvice(action="click[b0shoe0009]", hint="Look for navy blue running shoes with a rubber sole.",
                       contrast="You chose click[next >], but the match is on this page. The right move is "
                                "click[b0shoe0009] because it has a rubber sole.", error_type="exploration_failure")
OBS = "Instruction: [SEP] i need running shoes [SEP] Back to Search [SEP] B0SHOE0009 [SEP] Runner [SEP] $30.0"


NO_TEACHER = object()


def labeled(teacher: object = None) -> LabeledSnapshot:
    teacher = ADVICE.to_dict() if teacher is None else None
    return LabeledSnapshot(snapshot_id="t:1", traj_id="t", goal_idx=3, goal={"instruction_text": "i need running shoes"},
                           step_index=1, state="{}", observation=OBS, valid_actions=["click[back to search]",
                                                                                     "click[b0shoe0009]"],
                           has_search_bar=False, history=["search[running shoes]"], student_action="click[next >]",
                           final_reward=0.0, steps_to_end=2, teacher=teacher)


def test_patch_texts() -> None:
    assert patch_text("demo", ADVICE) == "The right move here is click[b0shoe0009]."
    assert patch_text("contrast", ADVICE) == ADVICE.contrast
    assert patch_text("hint", ADVICE) == "Hint: Look for navy blue running shoes with a rubber sole."
    with pytest.raises(ValueError, match="unknown format 'recap'"):
        patch_text("recap", ADVICE)


def test_placebo_is_neutral_and_of_similar_length() -> None:
    patches = condition_patches(ADVICE)
    mean = sum(len(patches[f]) for f in FORMATS) / 3
    assert abs(len(patches["placebo"]) - mean) < 60
    assert "click[" not in patches["placebo"] and "shoe" not in patches["placebo"]
    assert placebo_text(40) == "Shopping online is a common activity."


def test_supervision_prompts_golden() -> None:
    ctx, action = supervision_pair(labeled(), "demo")
    assert action == "click[b0shoe0009]" and completion_text(action) == " click[b0shoe0009]"
    assert render_prompt(ctx) == (
        "Task: i need running shoes\n"
        "Previous actions: search[running shoes]\n"
        f"Observation: {OBS}\n"
        "Action:"
    )
    ctx, _ = supervision_pair(labeled(), "contrast")
    assert render_prompt(ctx).endswith(
        "Teacher: Last time you chose click[next >] here, and that was wrong. Do something better.\nAction:")
    assert "b0shoe0009" not in ctx.patch  # the completion is never given away in the prompt
    ctx, _ = supervision_pair(labeled(), "hint")
    assert render_prompt(ctx, list_actions=True).endswith(
        "Available actions: click[back to search], click[b0shoe0009]\n"
        "Teacher: Look for navy blue running shoes with a rubber sole.\nAction:")


def test_router() -> None:
    from dataclasses import replace

    from teachable.supervision.examples import routed_format

    assert routed_format(labeled()) == "demo"  # route none -> the plain demonstration
    assert routed_format(replace(labeled(), route="hint")) == "hint"
    assert routed_format(replace(labeled(), route="hint"), force="contrast") == "contrast"
    with pytest.raises(ValueError, match="unknown format"):
        routed_format(labeled(), force="recap")


def test_no_teacher_no_supervision() -> None:
    with pytest.raises(SupervisionError, match="no teacher advice"):
        supervision_pair(labeled(teacher=NO_TEACHER), "demo")
    with pytest.raises(ValueError, match="unknown format"):
        supervision_pair(labeled(), "recap")


def test_action_list_shows_product_titles_before_their_clicks() -> None:
    from teachable.prompting import Context, product_titles, student_actions

    obs = ("Instruction: [SEP] i need running shoes [SEP] Back to Search [SEP] Page 1 (Total results: 2) [SEP] "
           "Next > [SEP] B0SHOE0009 [SEP] Trail Runner Shoes with a Rubber Sole for Men and Women, Navy Blue, "
           "Size 9 Wide [SEP] $30.0 [SEP] B0SOCK0001 [SEP] Wool Socks [SEP] $5.0 to $9.0")
    ctx = Context(instruction="i need running shoes", observation=obs,
                  valid_actions=("click[back to search]", "click[next >]", "click[b0shoe0009]", "click[b0sock0001]"))
    assert product_titles(ctx) == {
        "click[b0shoe0009]": "Trail Runner Shoes with a Rubber Sole for Men and Women, Navy Blue, Size 9 Wide",
        "click[b0sock0001]": "Wool Socks"}
    assert student_actions(ctx, list_titles=True) == [
        "click[back to search]", "click[next >]",
        "Trail Runner Shoes with a Rubber Sole for Men and Women, Navy ...: click[b0shoe0009]",
        "Wool Socks: click[b0sock0001]"]
    assert student_actions(ctx) == list(ctx.valid_actions)
    # an item page lists option values, not products: nothing is titled there
    item = Context(instruction="i need running shoes", observation=(
        "Instruction: [SEP] i need running shoes [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] 9 [SEP] 10 "
        "[SEP] Trail Runner [SEP] Price: $30.0 [SEP] Buy Now"), valid_actions=("click[9]", "click[10]", "click[buy now]"))
    assert product_titles(item) == {}
    rendered = render_prompt(ctx, list_actions=True, list_titles=True)
    assert "Wool Socks: click[b0sock0001]\nAction:" in rendered


def test_product_aliases_rename_ids_everywhere_the_student_reads_them() -> None:
    from teachable.prompting import Context, action_text, product_aliases

    ctx = Context(instruction="i need running shoes", observation=OBS + " [SEP] B0SOCK0001 [SEP] Socks [SEP] $5.0",
                  valid_actions=("click[back to search]", "click[b0shoe0009]", "click[b0sock0001]"),
                  history=("search[running shoes]", "click[b0sock0001]"),
                  patch="The right move here is click[b0shoe0009].")
    assert product_aliases(ctx) == {"click[b0shoe0009]": "click[#1]", "click[b0sock0001]": "click[#2]"}
    assert action_text(ctx, "click[b0sock0001]", alias_products=True) == "click[#2]"
    assert action_text(ctx, "click[b0sock0001]") == "click[b0sock0001]"
    text = render_prompt(ctx, list_actions=True, list_titles=True, alias_products=True)
    assert "b0shoe0009" not in text.lower() and "b0sock0001" not in text.lower()
    assert "Previous actions: search[running shoes] | click[#2]" in text
    assert "[SEP] #1 [SEP] Runner [SEP] $30.0" in text and "Runner: click[#1], Socks: click[#2]" in text
    assert "Teacher: The right move here is click[#1]." in text
    # an alias that another clickable already is: no aliases on that page
    clash = Context(instruction="x", observation=OBS, valid_actions=("click[#1]", "click[b0shoe0009]"))
    assert product_aliases(clash) == {}
