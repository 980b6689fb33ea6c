"""Parse an LLM turn under the format contract ``<think>...</think><action>...</action>``.

A turn is valid when it holds exactly one ``<think>`` block followed by exactly one ``<action>``
block, the action is non-empty, and (when the environment lists admissible actions) the action
is one of them. Text outside the two blocks is ignored. Actions are compared after lower-casing
and collapsing whitespace; the admissible spelling is returned. Without admissible actions (free-form
environments, e.g. code) the action is the block's text as written, only stripped at both ends, so
case, newlines and indentation reach the environment. Parsing never raises: anything else is an
invalid turn with a reason code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_TAG = re.compile(r"</?(think|action)>")


class ParseReason(str, Enum):
    OK = "ok"
    MISSING_THINK = "missing_think"
    MISSING_ACTION = "missing_action"
    DUPLICATE_TAG = "duplicate_tag"
    MALFORMED_TAGS = "malformed_tags"  # unbalanced, nested or out of order
    EMPTY_ACTION = "empty_action"
    NOT_ADMISSIBLE = "not_admissible"


@dataclass(frozen=True)
class ParsedTurn:
    """Result of parsing one turn: ``action`` is set only when ``valid``.

    ``format_valid`` is true when the tags follow the contract (the action may still be
    inadmissible); ``valid`` additionally needs a non-empty, admissible action.
    """

    action: str | None
    thought: str | None
    reason: ParseReason

    @property
    def valid(self) -> bool:
        return self.reason is ParseReason.OK

    @property
    def format_valid(self) -> bool:
        return self.reason in (ParseReason.OK, ParseReason.NOT_ADMISSIBLE)

    def refused(self) -> "ParsedTurn":
        """This turn after the environment refused its action (``info["invalid_action"]``)."""
        return ParsedTurn(None, self.thought, ParseReason.NOT_ADMISSIBLE)


def normalize_action(text: str) -> str:
    return " ".join(text.split()).lower()


def parse_turn(text: str, admissible_actions: list[str] | None = None) -> ParsedTurn:
    """Parse ``text``; ``admissible_actions=None`` accepts any non-empty action."""
    tags = [(m.group(0), m.start(), m.end()) for m in _TAG.finditer(text)]
    names = [tag for tag, _, _ in tags]
    for name, reason in (("think", ParseReason.MISSING_THINK), ("action", ParseReason.MISSING_ACTION)):
        counts = (names.count(f"<{name}>"), names.count(f"</{name}>"))
        if counts == (0, 0):
            return ParsedTurn(None, None, reason)
        if max(counts) > 1:
            return ParsedTurn(None, None, ParseReason.DUPLICATE_TAG)
    if names != ["<think>", "</think>", "<action>", "</action>"]:
        return ParsedTurn(None, None, ParseReason.MALFORMED_TAGS)
    thought = text[tags[0][2] : tags[1][1]].strip()
    action = text[tags[2][2] : tags[3][1]].strip()
    if not action:
        return ParsedTurn(None, thought, ParseReason.EMPTY_ACTION)
    if admissible_actions is not None:
        canonical = {normalize_action(a): a for a in admissible_actions}
        action = canonical.get(normalize_action(action))
        if action is None:
            return ParsedTurn(None, thought, ParseReason.NOT_ADMISSIBLE)
    return ParsedTurn(action, thought, ParseReason.OK)
