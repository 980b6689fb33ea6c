import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampo_verl.agent.action_parser import ParseReason, parse_turn

MOVES = ["up", "down", "left", "right"]
R = ParseReason


@pytest.mark.parametrize(
    "text,admissible,action,reason",
    [
        ("<think>box is left</think><action>left</action>", MOVES, "left", R.OK),
        ("  <think>x</think>\n<action>  Up </action><|im_end|>", MOVES, "up", R.OK),
        ("<think></think><action>down</action>", MOVES, "down", R.OK),
        ("<think>a</think><action>go to  Fridge 1</action>", ["go to fridge 1"], "go to fridge 1", R.OK),
        ("<think>a</think><action>anything goes</action>", None, "anything goes", R.OK),
        ("<action>left</action>", MOVES, None, R.MISSING_THINK),
        ("<think>hmm</think> left", MOVES, None, R.MISSING_ACTION),
        ("left", MOVES, None, R.MISSING_THINK),
        ("", MOVES, None, R.MISSING_THINK),
        ("<think>a</think><think>b</think><action>up</action>", MOVES, None, R.DUPLICATE_TAG),
        ("<think>a</think><action>up</action><action>down</action>", MOVES, None, R.DUPLICATE_TAG),
        ("<action>up</action><think>a</think>", MOVES, None, R.MALFORMED_TAGS),
        ("<think>a<action>up</action></think>", MOVES, None, R.MALFORMED_TAGS),
        ("<think>a</think><action>up", MOVES, None, R.MALFORMED_TAGS),
        ("<think>a</think><action>   </action>", MOVES, None, R.EMPTY_ACTION),
        ("<think>a</think><action>jump</action>", MOVES, None, R.NOT_ADMISSIBLE),
        ("<think>a</think><action>up</action>", [], None, R.NOT_ADMISSIBLE),
    ],
)
def test_parse_table(text, admissible, action, reason):
    parsed = parse_turn(text, admissible)
    assert (parsed.action, parsed.reason) == (action, reason)
    assert parsed.valid == (reason is R.OK)
    assert parsed.format_valid == (reason in (R.OK, R.NOT_ADMISSIBLE))


def test_free_form_actions_keep_case_newlines_and_indentation():
    code = "<code>\nfor i in range(3):\n    print(i)\n</code>"
    parsed = parse_turn(f"<think>loop</think><action>\n{code}\n  </action>", None)
    assert parsed.valid and parsed.action == code


def test_thought_is_extracted():
    assert parse_turn("<think> push it </think><action>up</action>", MOVES).thought == "push it"


pieces = st.sampled_from(["<think>", "</think>", "<action>", "</action>", "up", " ", "\n", "<", ">", "/"])


@given(st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=12), st.none() | st.lists(st.text(max_size=6)))
def test_parser_never_raises_and_valid_actions_are_admissible(parts, admissible):
    parsed = parse_turn("".join(parts), admissible)
    assert isinstance(parsed.reason, ParseReason)
    if parsed.valid:
        assert parsed.action and (admissible is None or parsed.action in admissible)
    else:
        assert parsed.action is None
