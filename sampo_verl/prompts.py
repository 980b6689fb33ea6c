"""Per-environment prompt templates: the one place that turns an environment state into a prompt.

Every turn is a fresh single user message: the environment's rules, the task, the last
``history_length`` turns (observation and the action taken), the current observation, the
admissible actions when the environment has them, and the format contract. RL rollouts
(``sampo_verl.agent_loop``) and behaviour-cloning data must both build prompts and target
responses with :func:`build_messages` and :func:`format_response`, so that the policy is trained
and sampled on exactly the same text.

Add a template for your own environment with ``register_prompt("my_env", "rules ...")``;
unknown environments get a generic introduction.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_CONTRACT = (
    "First reason step by step inside <think> </think>. Then give exactly one action inside "
    "<action> </action>, for example: <think>...</think><action>...</action>"
)

ENV_INTROS: dict[str, str] = {
    "sokoban": (
        "You are solving a Sokoban puzzle. Push every box onto a target. Symbols: # wall, _ floor, "
        "O target, X box, √ box on target, P you, S you on a target. You can push a box one cell "
        "by walking into it if the cell behind it is free; you cannot pull boxes. "
        "Actions: up, down, left, right."
    ),
    "frozenlake": (
        "You are walking on a frozen lake. Reach the goal G without stepping into a hole H. "
        "Symbols: P you, _ frozen ice, H hole, G goal. Row 1 is the top row. "
        "Actions: up, down, left, right."
    ),
    "alfworld": (
        "You are an agent in a household. Use the text commands listed as admissible to complete "
        "the task."
    ),
}
GENERIC_INTRO = "You are an agent interacting with a text environment. Complete the task."


def register_prompt(env_name: str, intro: str) -> None:
    """Set the rules/introduction shown to the policy for ``env_name``."""
    ENV_INTROS[env_name] = intro


@dataclass(frozen=True)
class Turn:
    """One past turn as shown in the history: the observation and what the policy did."""

    observation: str
    action: str  # the parsed action, or a note such as "(invalid: missing_action)"


def build_messages(
    env_name: str,
    observation: str,
    history: list[Turn],
    admissible_actions: list[str] | None,
    step: int,
    task: str = "",
    history_length: int = 2,
) -> list[dict[str, str]]:
    """Chat messages for turn ``step`` (0-based) of an episode; history shows the last turns."""
    parts = [ENV_INTROS.get(env_name, GENERIC_INTRO)]
    if task:
        parts.append(f"Task: {task}")
    shown = history[-history_length:] if history_length > 0 else []
    if shown:
        first = step - len(shown)
        lines = [f"Your last {len(shown)} turn(s):"]
        for i, turn in enumerate(shown):
            lines.append(f"[Turn {first + i + 1}] Observation:\n{turn.observation}\nAction: {turn.action}")
        parts.append("\n".join(lines))
    parts.append(f"[Turn {step + 1}] Current observation:\n{observation}")
    if admissible_actions is not None:
        parts.append("Admissible actions: " + ", ".join(admissible_actions))
    parts.append(FORMAT_CONTRACT)
    return [{"role": "user", "content": "\n\n".join(parts)}]


def format_response(thought: str, action: str) -> str:
    """The target response of a turn under the format contract (for behaviour-cloning data)."""
    return f"<think>{thought}</think><action>{action}</action>"
