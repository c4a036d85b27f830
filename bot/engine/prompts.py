"""Turning what a user typed into a list of prompts.

Commas separate prompts; double quotes keep commas inside one prompt (`"a castle, at dusk", robotic dog` is
two prompts). Curly quotes, which phone keyboards type, count as double quotes too.
"""

from __future__ import annotations

import unicodedata

from bot.engine.options import MAX_PROMPT_CHARS

QUOTES = frozenset('"“”„‟')
_WHITESPACE_CONTROLS = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x1f\x85")
EXAMPLE = '`a red fox, "a castle, at dusk", robotic dog`'


class PromptError(ValueError):
    """The text cannot be turned into prompts; the message says how to fix it."""


def parse_prompts(text: str, *, max_prompts: int) -> list[str]:
    """Split `text` into prompts, or raise `PromptError` with a message a user can act on."""
    fields = _split(_clean(text))
    prompts = [p for p in (_unwrap(f.strip()) for f in fields) if p]
    if not prompts:
        raise PromptError(f"No prompt given: describe what you want to see, for example {EXAMPLE}.")
    if len(prompts) > max_prompts:
        raise PromptError(
            f"That is {len(prompts)} prompts; the limit is {max_prompts} per command. "
            "Send the rest in another command."
        )
    for number, prompt in enumerate(prompts, start=1):
        if len(prompt) > MAX_PROMPT_CHARS:
            raise PromptError(
                f"Prompt {number} is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}. "
                "Shorten it."
            )
    return prompts


def _clean(text: str) -> str:
    """Line breaks and tabs become spaces; other control and format characters are dropped."""
    out = []
    for char in text:
        if char in _WHITESPACE_CONTROLS:
            out.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cs") and char not in "\u200b\ufeff":
            out.append(char)
    return "".join(out)


def _split(text: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    quoted_from: int | None = None
    for position, char in enumerate(text):
        if char in QUOTES:
            quoted_from = position if quoted_from is None else None
        if char == "," and quoted_from is None:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted_from is not None:
        snippet = text[quoted_from : quoted_from + 30]
        raise PromptError(
            f'A double quote is never closed (at `{snippet}`). Close it with another `"`, '
            f"or remove it. Quotes keep commas inside one prompt: {EXAMPLE}."
        )
    fields.append("".join(current))
    return fields


def _unwrap(field: str) -> str:
    """`"a castle, at dusk"` → `a castle, at dusk`; quotes inside a prompt (`a sign saying "hi"`) stay."""
    if len(field) >= 2 and field[0] in QUOTES and field[-1] in QUOTES:
        inner = field[1:-1]
        if not any(char in QUOTES for char in inner):
            return inner.strip()
    return field
