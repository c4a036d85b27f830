import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine.options import MAX_PROMPT_CHARS
from bot.engine.prompts import PromptError, parse_prompts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a red fox", ["a red fox"]),
        ('a red fox, "a castle, at dusk", robotic dog', ["a red fox", "a castle, at dusk", "robotic dog"]),
        ('"a castle, at dusk", robotic dog', ["a castle, at dusk", "robotic dog"]),
        ("  a  ,  b  ", ["a", "b"]),
        ("a,,b", ["a", "b"]),
        ("a, b,", ["a", "b"]),
        (",,a,,", ["a"]),
        ("cat, cat, cat", ["cat", "cat", "cat"]),
        ('a sign saying "hello", dog', ['a sign saying "hello"', "dog"]),
        ('a sign saying "hello, world"', ['a sign saying "hello, world"']),
        ('"a" and "b", c', ['"a" and "b"', "c"]),
        ('"  padded, quoted  "', ["padded, quoted"]),
        ('"", a', ["a"]),
        ("“curly, quotes”, b", ["curly, quotes", "b"]),
        ("line\nbreak, tab\there", ["line break", "tab here"]),
        ("bell\x07 char, nul\x00x", ["bell char", "nulx"]),
        ("zero\u200bwidth", ["zerowidth"]),
        ("emoji 🦊, 👩‍🚀 astronaut", ["emoji 🦊", "👩‍🚀 astronaut"]),
    ],
)
def test_splits_prompts(text: str, expected: list[str]) -> None:
    assert parse_prompts(text, max_prompts=25) == expected


@pytest.mark.parametrize(
    ("text", "max_prompts", "says"),
    [
        ("", 10, "No prompt given"),
        ("   ", 10, "No prompt given"),
        (", , ,", 10, "No prompt given"),
        ('""', 10, "No prompt given"),
        ("\x00\x01", 10, "No prompt given"),
        ("a, b, c", 2, "That is 3 prompts; the limit is 2"),
        ('"a castle, at dusk', 10, "never closed"),
        ('a, b", c', 10, "never closed"),
        ("x" * (MAX_PROMPT_CHARS + 1), 10, "Prompt 1 is 10,001 characters long; the limit is 10,000"),
        ("ok, " + "y" * (MAX_PROMPT_CHARS + 5), 10, "Prompt 2 is 10,005 characters"),
    ],
)
def test_rejects_with_specific_message(text: str, max_prompts: int, says: str) -> None:
    with pytest.raises(PromptError, match=says):
        parse_prompts(text, max_prompts=max_prompts)


def test_prompt_at_the_api_limit_is_accepted() -> None:
    assert parse_prompts("x" * MAX_PROMPT_CHARS, max_prompts=1) == ["x" * MAX_PROMPT_CHARS]


def test_exactly_max_prompts_is_accepted() -> None:
    assert len(parse_prompts(",".join("abcdefghij"), max_prompts=10)) == 10


@given(st.text(), st.integers(min_value=1, max_value=30))
def test_never_raises_anything_but_prompt_error(text: str, max_prompts: int) -> None:
    try:
        prompts = parse_prompts(text, max_prompts=max_prompts)
    except PromptError as exc:
        assert str(exc)
    else:
        assert 1 <= len(prompts) <= max_prompts
        assert all(p and p == p.strip() for p in prompts)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters=',"“”„‟', blacklist_categories=["Cc", "Cs"]),
            min_size=1,
        ).filter(lambda s: s.strip() and "\u200b" not in s and "\ufeff" not in s),
        min_size=1,
        max_size=10,
    )
)
def test_quoting_each_prompt_round_trips(prompts: list[str]) -> None:
    text = ", ".join(f'"{p}"' for p in prompts)
    assert parse_prompts(text, max_prompts=10) == [p.strip() for p in prompts]


@given(st.lists(st.sampled_from(["fox", "a castle, at dusk", "dog", "x,y,z"]), min_size=1, max_size=10))
def test_commas_inside_quotes_never_split(prompts: list[str]) -> None:
    text = ",".join(f'"{p}"' if "," in p else p for p in prompts)
    assert parse_prompts(text, max_prompts=10) == prompts
