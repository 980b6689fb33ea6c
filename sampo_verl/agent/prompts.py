"""Prompts: the one place that turns an environment state and an episode's history into a prompt.

Every turn is a fresh single user message: the environment's rules (its class's ``prompt_intro``),
the task, the last ``history_length`` turns (observation and the action taken), the current
observation, the admissible actions when the environment has them, and the format contract.
RL rollouts (:mod:`sampo_verl.agent.loop`) and behaviour-cloning data (:mod:`sampo_verl.bc.sft_data`)
both play their episodes through :class:`EpisodePrompt` and write target responses with
:func:`format_response`, so the policy is trained and sampled on exactly the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from sampo_verl.envs.base import env_class

FORMAT_CONTRACT = (
    "First reason step by step inside <think> </think>. Then give exactly one action inside "
    "<action> </action>, for example: <think>...</think><action>...</action>"
)


@dataclass(frozen=True)
class Turn:
    """One past turn as shown in the history: the observation and what the policy did."""

    observation: str
    action: str  # the parsed action, or a note such as "(invalid: missing_action)"


class EpisodePrompt:
    """The prompt side of one episode: each turn's chat messages, and the history they show."""

    def __init__(self, intro: str, task: str = "", history_length: int = 2):
        self.intro, self.task, self.history_length = intro, task, history_length
        self.history: list[Turn] = []

    @classmethod
    def for_env(cls, env_name: str, task: str = "", history_length: int = 2) -> EpisodePrompt:
        """An episode of the registered environment ``env_name`` (its ``prompt_intro``)."""
        return cls(env_class(env_name).prompt_intro, task, history_length)

    @property
    def step(self) -> int:
        """The 0-based index of the next turn (one history entry per turn played)."""
        return len(self.history)

    def messages(self, observation: str, admissible_actions: list[str] | None) -> list[dict[str, str]]:
        """Chat messages of the next turn; the history shows the last ``history_length`` turns."""
        parts = [self.intro]
        if self.task:
            parts.append(f"Task: {self.task}")
        shown = self.history[-self.history_length :] if self.history_length > 0 else []
        if shown:
            first = self.step - len(shown)
            lines = [f"Your last {len(shown)} turn(s):"]
            for i, turn in enumerate(shown):
                lines.append(f"[Turn {first + i + 1}] Observation:\n{turn.observation}\nAction: {turn.action}")
            parts.append("\n".join(lines))
        parts.append(f"[Turn {self.step + 1}] Current observation:\n{observation}")
        if admissible_actions is not None:
            parts.append("Admissible actions: " + ", ".join(admissible_actions))
        parts.append(FORMAT_CONTRACT)
        return [{"role": "user", "content": "\n\n".join(parts)}]

    def record(self, observation: str, action: str) -> None:
        """The turn played from ``observation`` took ``action``."""
        self.history.append(Turn(observation, action))

    def record_invalid(self, observation: str, reason: str) -> None:
        """The turn played from ``observation`` was invalid (the environment was not stepped)."""
        self.record(observation, f"(invalid: {reason})")


def format_response(thought: str, action: str) -> str:
    """The target response of a turn under the format contract (for behaviour-cloning data)."""
    return f"<think>{thought}</think><action>{action}</action>"
