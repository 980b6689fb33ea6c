"""Multi-turn environment agent loop for verl 0.9.1 (registered as ``sampo_env_agent``).

One call of :meth:`EnvAgentLoop.run` plays one episode of a text environment and returns a
list of ``AgentLoopOutput``: one per turn (one LLM call each). Each turn's prompt is rebuilt by
:class:`sampo_verl.agent.prompts.EpisodePrompt`: the environment's rules, task, current observation,
the last ``history_length`` turns, admissible actions and the format contract. verl's v1 trainer
(``trainer.use_v1=true``) stores every element of that list as its own sample under the key
``{uid}_{session_id}_{turn}``; the legacy trainer accepts only one output per prompt and is
rejected at construction.

Turn outcome: the response is parsed (:func:`sampo_verl.agent.action_parser.parse_turn`). A malformed or
inadmissible turn is an *invalid action*: the environment is **not** stepped, the observation stays
the same, the step reward is 0 and ``action_valid=False``. The invalid-action penalty itself is
applied by the multi-turn advantage estimators from ``action_valid``
(``algorithm.<estimator>.invalid_penalty``, see :mod:`sampo_verl.algorithms.advantages`), in one place.

Per-turn ``extra_fields``: the per-turn schema of :mod:`sampo_verl.agent.turns` (``traj_uid``,
``step``, ``anchor``, ``step_reward``, ``episode_reward``, ``action_valid``, ... and the episode
outcome, also in ``reward_extra_info``); ``reward_score`` is the episode reward for every turn
(verl's v1 trainer copies the last turn's score to all turns anyway).

An environment call that raises or exceeds ``env_timeout_s`` ends the episode as failed
(``env_error=1``, ``success=0``); the turns played so far are kept. A failing ``reset`` raises,
which verl counts as a rollout failure of the group. A timed-out call keeps running in its worker
thread (Python cannot kill it); the environment is discarded.

Episode definition comes from the dataset row's ``extra_info`` (see :mod:`sampo_verl.agent.dataset`):
``env`` (registered name), ``seed``, ``env_options`` (constructor kwargs; dict or JSON string),
``task`` (reset options; dict or JSON string), optional ``max_turns`` (default: the loop's
``max_turns``, else the environment class's ``default_max_turns``). Loop options come from the
agent-loop config file (``actor_rollout_ref.rollout.agent.agent_loop_config_path``), e.g.::

    - name: sampo_env_agent
      _target_: sampo_verl.agent.loop.EnvAgentLoop
      max_turns: null
      history_length: 2
      env_timeout_s: 60
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable
from uuid import uuid4

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, DictConfigWrap, register
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.profiler import simple_timer

from sampo_verl.agent import turns as schema
from sampo_verl.agent.action_parser import parse_turn
from sampo_verl.agent.prompts import EpisodePrompt
from sampo_verl.envs import env_class, make_env

logger = logging.getLogger(__file__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "WARN"))


class EnvError(RuntimeError):
    """An environment call raised or timed out."""


@dataclass
class EpisodeSpec:
    """What a dataset row asks for: which environment, which episode, how long."""

    env: str
    seed: int
    env_options: dict[str, Any]
    task: dict[str, Any]
    max_turns: int | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "EpisodeSpec":
        extra = row.get("extra_info") or {}
        if "env" not in extra:
            raise KeyError("sampo_env_agent: the dataset row's extra_info has no 'env' (environment name)")
        max_turns = extra.get("max_turns")
        return cls(
            env=str(extra["env"]),
            seed=int(extra.get("seed", 0)),
            env_options=_as_dict(extra.get("env_options"), "extra_info.env_options"),
            task=_as_dict(extra.get("task"), "extra_info.task"),
            max_turns=None if max_turns is None else int(max_turns),
        )


def _as_dict(value: Any, field: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError(f"{field} must be a dict or a JSON object string, got {type(value).__name__}")
    return {k: v for k, v in value.items() if v is not None}


@dataclass
class Generation:
    """One LLM call: token ids as verl stores them, plus what the server reported."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_logprobs: list[float] | None
    server_extra: dict[str, Any]
    generate_s: float


@dataclass
class TurnRecord:
    generation: Generation
    anchor: str  # environment state before the turn
    reward: float  # environment reward (0 when the env was not stepped)
    parse_reason: str
    action_valid: bool
    format_valid: bool
    won: bool


def standalone_config(rollout: Mapping[str, Any]) -> DictConfig:
    """The part of verl's trainer config an agent loop reads, for a loop run outside a trainer."""
    return OmegaConf.create(
        {
            "actor_rollout_ref": {"rollout": dict(rollout)},
            "trainer": {"use_v1": True},
            "data": {"apply_chat_template_kwargs": {}},
        }
    )


@register("sampo_env_agent")
class EnvAgentLoop(AgentLoopBase):
    """Play one text-environment episode per call; return one ``AgentLoopOutput`` per turn."""

    def __init__(
        self,
        *args: Any,
        max_turns: int | None = None,
        history_length: int = 2,
        env_timeout_s: float = 60.0,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if not self.config.trainer.get("use_v1", True):
            raise ValueError(
                "sampo_env_agent returns one sample per turn, which only verl's v1 trainer accepts: "
                "set trainer.use_v1=true"
            )
        if max_turns is not None and max_turns < 1:
            raise ValueError(f"sampo_env_agent: max_turns must be >= 1, got {max_turns}")
        if history_length < 0:
            raise ValueError(f"sampo_env_agent: history_length must be >= 0, got {history_length}")
        if env_timeout_s <= 0:
            raise ValueError(f"sampo_env_agent: env_timeout_s must be > 0, got {env_timeout_s}")
        self.max_turns, self.history_length = max_turns, history_length
        self.env_timeout_s = float(env_timeout_s)
        self.response_length = self.rollout_config.response_length

    @classmethod
    def standalone(
        cls,
        server_manager: Any,
        tokenizer: Any,
        rollout: Mapping[str, Any],
        hf_model_type: str | None = None,
        **options: Any,
    ) -> EnvAgentLoop:
        """A loop outside verl's AgentLoopWorker (evaluation, tests): ``rollout`` is the rollout config it reads."""
        config = standalone_config(rollout)
        return cls(
            trainer_config=DictConfigWrap(config=config),
            server_manager=server_manager,
            tokenizer=tokenizer,
            processor=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
            hf_model_type=hf_model_type,
            **options,
        )

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> list[AgentLoopOutput]:
        spec = EpisodeSpec.from_row(kwargs)
        max_turns = spec.max_turns or self.max_turns or env_class(spec.env).default_max_turns
        traj_uid = f"{kwargs['uid']}_{kwargs.get('session_id', 0)}" if "uid" in kwargs else uuid4().hex

        env = make_env(spec.env, **spec.env_options)
        try:
            observation, info = await self._call_env(env.reset, spec.seed, spec.task or None)
        except EnvError as error:
            raise RuntimeError(f"{spec.env}: reset(seed={spec.seed}) failed: {error}") from error
        prompt = EpisodePrompt.for_env(spec.env, str(info.get("task", "")), self.history_length)

        turns: list[TurnRecord] = []
        env_error = False
        try:
            for _ in range(max_turns):
                admissible = info.get("admissible_actions")
                messages = prompt.messages(observation, admissible)
                generation = await self._generate(messages, traj_uid, sampling_params)
                text = self.tokenizer.decode(generation.response_ids, skip_special_tokens=True)
                parsed = parse_turn(text, admissible)
                anchor, reward, done = str(info["anchor"]), 0.0, False
                if parsed.valid:
                    try:
                        next_observation, reward, done, info = await self._call_env(env.step, parsed.action)
                    except EnvError as error:
                        logger.warning("%s seed=%d: step failed, episode ends failed: %s", spec.env, spec.seed, error)
                        env_error = done = True
                        next_observation, reward = observation, 0.0
                    prompt.record(observation, parsed.action)
                    observation = next_observation
                else:
                    prompt.record_invalid(observation, parsed.reason.value)
                turns.append(
                    TurnRecord(
                        generation=generation,
                        anchor=anchor,
                        reward=float(reward),
                        parse_reason=parsed.reason.value,
                        action_valid=parsed.valid,
                        format_valid=parsed.format_valid,
                        won=bool(info.get("won", False)) and not env_error,
                    )
                )
                if done:
                    break
        finally:
            if not env_error:
                env.close()
        return self._outputs(turns, traj_uid, env_error)

    async def _generate(self, messages: list[dict], request_id: str, sampling_params: dict[str, Any]) -> Generation:
        prompt_ids = await self.ct_build_initial_tokens(messages)
        timing: dict[str, float] = {}
        with simple_timer("generate_sequences", timing):
            output = await self.server_manager.generate(
                request_id=request_id, prompt_ids=prompt_ids, sampling_params=sampling_params
            )
        merge, response_mask, logprobs = await self.ct_merge_assistant_token(
            prompt_ids,
            output.token_ids,
            [],
            [] if output.log_probs else None,
            assistant_logprobs=output.log_probs or None,
        )
        n = len(response_mask)
        response_ids = merge.token_ids[len(merge.token_ids) - n :] if n else []
        return Generation(
            prompt_ids=merge.token_ids[: len(merge.token_ids) - n],
            response_ids=response_ids[: self.response_length],
            response_logprobs=logprobs[: self.response_length] if logprobs else None,
            server_extra=dict(output.extra_fields),
            generate_s=timing["generate_sequences"],
        )

    async def _call_env(self, fn: Callable, *args: Any) -> Any:
        """Run an environment call in a worker thread, bounded by ``env_timeout_s``."""
        try:
            return await asyncio.wait_for(self.loop.run_in_executor(None, fn, *args), self.env_timeout_s)
        except asyncio.TimeoutError as error:
            raise EnvError(f"{getattr(fn, '__qualname__', fn)} exceeded env_timeout_s={self.env_timeout_s}") from error
        except Exception as error:  # any environment bug ends the episode, not the training run
            raise EnvError(f"{type(error).__name__}: {error}") from error

    def _outputs(self, turns: list[TurnRecord], traj_uid: str, env_error: bool) -> list[AgentLoopOutput]:
        episode_reward = sum(t.reward for t in turns)
        episode = schema.EpisodeOutcome(
            success=float(bool(turns) and turns[-1].won),
            episode_length=len(turns),
            invalid_action_rate=sum(not t.action_valid for t in turns) / max(len(turns), 1),
            env_error=float(env_error),
        )
        outputs = []
        for step, t in enumerate(turns):
            g = t.generation
            extra = schema.turn_extra_fields(
                traj_uid=traj_uid,
                step=step,
                anchor=t.anchor,
                step_reward=t.reward,
                episode_reward=episode_reward,
                action_valid=t.action_valid,
                format_valid=t.format_valid,
                parse_reason=t.parse_reason,
                won=t.won,
                episode=episode,
            )
            outputs.append(
                AgentLoopOutput(
                    prompt_ids=g.prompt_ids,
                    response_ids=g.response_ids,
                    response_mask=[1] * len(g.response_ids),
                    response_logprobs=g.response_logprobs,
                    reward_score=episode_reward,
                    num_turns=2 * len(turns),
                    metrics={"generate_sequences": g.generate_s},
                    extra_fields={**g.server_extra, **extra},
                )
            )
        return outputs
