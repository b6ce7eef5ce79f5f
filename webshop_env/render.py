"""Renderers of a `Page`: WebShop's `text` observation, `text_rich`, and HTML.

`text` reproduces what the original produced by rendering HTML and joining its visible text
nodes with ' [SEP] ': each node is stripped; a node that is exactly a newline is skipped; an
empty value makes no node at all; a blank value that is not exactly a newline makes an empty
segment. Bullet points are rendered after a space in the original template, so a blank or empty
bullet still gives an (empty) segment. No HTML is built or parsed to make a text observation.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

from webshop_env.pages import PREV_PAGE, Page, clickables

SEP = " [SEP] "
DONE_TARGET_LABELS = (
    "Target", "asin", "options", "attrs", "price upper", "instuction text",
    "category", "product category", "query", "Goal", "None",
)


def text_node(value: str) -> list[str]:
    """Segments one HTML text node contributes (0 or 1)."""
    if value == "" or value == "\n":
        return []
    return [value.strip()]


def flask_tojson(obj: Any) -> str:
    """Flask's `tojson` filter: sorted keys, ASCII, and HTML-safe escapes of & ' < >."""
    text = json.dumps(obj, sort_keys=True)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027")
    )


def _header(page: Page) -> list[str]:
    return ["Instruction:", *text_node(page.instruction)]


def _product_segments(page: Page) -> Iterator[str]:
    for p in page.products:
        yield p["asin"]
        yield from text_node(p["Title"])
        yield p["Price"]


def _item_segments(product: dict[str, Any]) -> Iterator[str]:
    for name, values in product["options"].items():
        yield from text_node(name)
        for value in values:
            yield from text_node(value)
    yield from text_node(product["Title"])
    yield f"Price: {product['Price']}"
    yield "Rating: N.A."


def _sub_segments(page: Page) -> list[str]:
    product = page.product or {}
    if page.sub == "Description":
        return text_node(product["Description"])
    if page.sub == "Features":
        # each bullet follows a space in the template, so even a blank bullet is a segment
        return [b.strip() for b in product["BulletPoints"]]
    return []  # Reviews: WebShop loads no reviews


def _done_segments(page: Page) -> list[str]:
    return [
        "Thank you for shopping with us!", "Your code:", "None", "(Paste it in your MTurk interface.)",
        "Purchased", "asin", page.asin or "None", "options", flask_tojson(page.options),
        "attrs", "None", "category", "None", "query", "None", "product category", "None",
        *DONE_TARGET_LABELS, "Reward", "Your score (min 0.0, max 1.0)", repr(page.reward),
        "Reward Details", "None",
    ]


def text_segments(page: Page) -> list[str]:
    """The visible text segments of a page, in order."""
    if page.kind == "start":
        return ["WebShop", *_header(page), "Search"]
    if page.kind == "done":
        return _done_segments(page)
    segments = _header(page) + ["Back to Search"]
    if page.kind == "results":
        segments.append(f"Page {page.page_num} (Total results: {page.total})")
        segments.extend(b for b in page.buttons if b != "Back to Search")
        segments.extend(_product_segments(page))
    elif page.kind == "item":
        segments.append(PREV_PAGE)
        segments.extend(_item_segments(page.product or {}))
        segments.extend(("Description", "Features", "Reviews", "Buy Now"))
    else:
        segments.append(PREV_PAGE)
        segments.extend(_sub_segments(page))
    return segments


def render_text(page: Page) -> str:
    """WebShop's `text` observation."""
    return SEP.join(text_segments(page))


def render_text_rich(page: Page) -> str:
    """A richer text view: buttons, options and products marked, selections shown.

    Clickable labels are wrapped as `[button] x [button_]`; selected options and visited
    products as `[clicked button] x [clicked button_]`; each selected option is announced on
    the first line. One element per line.
    """
    buttons = set(page.buttons)
    selected = set(page.options.values())
    asins = {p["asin"] for p in page.products}
    option_values = {v for vs in (page.product or {}).get("options", {}).values() for v in vs} if page.kind == "item" else set()
    lines, notes = [], []
    for seg in text_segments(page):
        if seg in buttons:
            lines.append(f"[button] {seg} [button_]")
        elif seg in asins:
            mark = "clicked button" if seg in page.visited else "button"
            lines.append(f"[{mark}] {seg} [{mark}_]")
        elif seg in option_values:
            if seg in selected:
                notes.append(f"You have clicked {seg}.")
                lines.append(f"  [clicked button] {seg} [clicked button_]")
            else:
                lines.append(f"  [button] {seg} [button_]")
        else:
            lines.append(seg)
    return "\n".join(notes + lines) + "\n"


def render_html(page: Page) -> str:
    """An HTML fragment of the page for the web UI: every clickable is a form button.

    Buttons post `action=click[<label>]`; pages that accept a search show a search form.
    """
    esc = html.escape
    click_set = set(clickables(page))
    parts = [f'<div class="webshop-page" data-kind="{esc(page.kind)}">']
    parts.append(f'<div id="instruction-text"><h4>Instruction:</h4><p>{esc(page.instruction)}</p></div>')
    if page.kind != "done":
        parts.append(
            '<form class="search" method="post"><input id="search_input" name="query" '
            'placeholder="Search..."><button class="btn" name="action" value="search">Search</button></form>'
        )
    for seg in text_segments(page)[len(_header(page)):] if page.kind != "start" else []:
        label = seg.lower() if page.kind != "done" else None
        if label is not None and label in click_set and label != "search":
            value = esc(f"click[{label}]")
            cls = "btn selected" if seg in page.options.values() else "btn"
            parts.append(
                f'<form method="post" class="clickable"><button class="{cls}" name="action" '
                f'value="{value}">{esc(seg)}</button></form>'
            )
        else:
            parts.append(f"<p>{esc(seg)}</p>")
    parts.append("</div>")
    return "\n".join(parts)
