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

Environment faults (:mod:`sampo_verl.agent.env_calls`): every call runs on the episode's own
thread, bounded by ``env_timeout_s``, and its result is checked against the protocol. A step that
raises, overruns, returns a non-finite reward or breaks the protocol ends the episode as failed
(``env_error=1``, ``success=0``, ``env_error_reason``); the turns played so far are kept and the
fault is logged. An episode whose construction or ``reset`` faults cannot be played: ``run``
returns no turns (verl drops it, the group keeps its other episodes) and the next episode of the
process counts it (``env_reset_failures``). A ``close`` that fails is logged and counted
(``env_close_failed``); the finished episode stands. A timed-out environment is abandoned on its
thread (Python cannot kill a thread) and not closed.

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

import functools
import json
import logging
import os
from collections import Counter
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
from sampo_verl.agent.env_calls import TIMEOUT, EnvFault, EnvThread, checked_reset, checked_step
from sampo_verl.agent.prompts import EpisodePrompt
from sampo_verl.envs import env_class

logger = logging.getLogger(__file__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "WARN"))


# episodes of this process that could not start since the last one that did (which reports them)
_RESET_FAILURES: Counter[str] = Counter()


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
        cls = env_class(spec.env)  # an unknown name is a configuration error, raised as such
        max_turns = spec.max_turns or self.max_turns or cls.default_max_turns
        traj_uid = f"{kwargs['uid']}_{kwargs.get('session_id', 0)}" if "uid" in kwargs else uuid4().hex
        where = f"{spec.env} seed={spec.seed}"
        env_thread = EnvThread(spec.env)
        try:
            try:
                env = await self._call(env_thread, functools.partial(cls, **spec.env_options))
                observation, info = checked_reset(await self._call(env_thread, env.reset, spec.seed, spec.task or None))
            except EnvFault as fault:
                _RESET_FAILURES[fault.reason] += 1
                logger.warning("%s: the episode could not start, verl drops it: %s", where, fault)
                return []
            prompt = EpisodePrompt.for_env(spec.env, str(info.get("task", "")), self.history_length)
            turns, fault = await self._play(
                env_thread, env, prompt, observation, info, max_turns, traj_uid, sampling_params
            )
            if fault is not None:
                logger.warning("%s: the episode ends failed after %d turn(s): %s", where, len(turns), fault)
            close_failed = False
            if fault is None or fault.reason != TIMEOUT:
                try:
                    await self._call(env_thread, env.close)
                except EnvFault as close_fault:  # the finished episode stands
                    close_failed = True
                    logger.warning("%s: close failed, the episode is kept: %s", where, close_fault)
        finally:
            env_thread.stop()
        return self._outputs(turns, traj_uid, fault, close_failed)

    async def _play(
        self,
        env_thread: EnvThread,
        env: Any,
        prompt: EpisodePrompt,
        observation: str,
        info: dict[str, Any],
        max_turns: int,
        traj_uid: str,
        sampling_params: dict[str, Any],
    ) -> tuple[list[TurnRecord], EnvFault | None]:
        """Play turns until the environment says done, it faults, or ``max_turns``."""
        turns: list[TurnRecord] = []
        for _ in range(max_turns):
            admissible = info.get("admissible_actions")
            generation = await self._generate(prompt.messages(observation, admissible), traj_uid, sampling_params)
            text = self.tokenizer.decode(generation.response_ids, skip_special_tokens=True)
            parsed = parse_turn(text, admissible)
            anchor, reward, done, fault = str(info["anchor"]), 0.0, False, None
            if parsed.valid:
                try:
                    next_observation, reward, done, info = checked_step(
                        await self._call(env_thread, env.step, parsed.action)
                    )
                except EnvFault as error:
                    fault, next_observation, reward = error, observation, 0.0
                prompt.record(observation, parsed.action)
                observation = next_observation
            else:
                prompt.record_invalid(observation, parsed.reason.value)
            turns.append(
                TurnRecord(
                    generation=generation,
                    anchor=anchor,
                    reward=reward,
                    parse_reason=parsed.reason.value,
                    action_valid=parsed.valid,
                    format_valid=parsed.format_valid,
                    won=fault is None and bool(info.get("won", False)),
                )
            )
            if done or fault is not None:
                return turns, fault
        return turns, None

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

    async def _call(self, env_thread: EnvThread, fn: Callable, *args: Any) -> Any:
        return await env_thread.call(fn, *args, timeout=self.env_timeout_s)

    def _outputs(
        self, turns: list[TurnRecord], traj_uid: str, fault: EnvFault | None, close_failed: bool
    ) -> list[AgentLoopOutput]:
        episode_reward = sum(t.reward for t in turns)
        episode = schema.EpisodeOutcome(
            success=float(bool(turns) and turns[-1].won),
            episode_length=len(turns),
            invalid_action_rate=sum(not t.action_valid for t in turns) / max(len(turns), 1),
            env_error=float(fault is not None),
        )
        incidents = schema.EnvIncidents(
            reason=fault.reason if fault else "",
            close_failed=close_failed,
            reset_failures=sum(_RESET_FAILURES.values()),
        )
        _RESET_FAILURES.clear()
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
                incidents=incidents,
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
