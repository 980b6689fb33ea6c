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
the same, the step reward is 0 and ``action_valid=False``. An environment whose actions have a grammar
of their own (TIR-Math's ``<code>``/``<answer>``, WebShop's ``search[...]``) refuses a well-tagged action
that breaks it by returning ``info["invalid_action"]`` (the reason) with its state unchanged: the turn
is then invalid in the same way (``not_admissible``, step reward 0), showing the environment's message.
The invalid-action penalty itself is
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

The episode itself is :func:`play_episode`, whose model is any ``generate(messages) -> Generation``:
the loop's own (verl's server, token ids) in training, an OpenAI-compatible endpoint in
:mod:`sampo_verl.runs.evaluate`. A :class:`GenerationFailed` (a served model's request that failed
after its retries) ends the episode as failed.

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
      env_workers: null   # worker processes for environments; null: the class's worker_processes
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from uuid import uuid4

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, DictConfigWrap, register
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.profiler import simple_timer

from sampo_verl.agent import turns as schema
from sampo_verl.agent.action_parser import parse_turn
from sampo_verl.agent.env_calls import TIMEOUT, EnvFault, EnvThread, checked_reset, checked_step
from sampo_verl.agent.env_workers import RemoteEnv, default_workers, worker_pool
from sampo_verl.agent.prompts import EpisodePrompt
from sampo_verl.envs import env_class
from sampo_verl.envs.base import INVALID_ACTION

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
    text: str  # the reply as the parser reads it


class GenerationFailed(RuntimeError):
    """The model gave no reply (a served model's request failed after its retries): the episode ends failed."""


Generate = Callable[[list[dict]], Awaitable[Generation]]


@dataclass
class TurnRecord:
    generation: Generation
    messages: list[dict]  # the prompt of the turn
    action: str | None  # the parsed action (None: invalid turn)
    anchor: str  # environment state before the turn
    reward: float  # environment reward (0 when the env was not stepped)
    parse_reason: str
    action_valid: bool
    format_valid: bool
    won: bool


@dataclass
class Episode:
    """A played episode: its turns and how it ended (``fault``: the environment's; ``generation_error``:
    the model gave no reply)."""

    turns: list[TurnRecord]
    fault: EnvFault | None = None
    close_failed: bool = False
    generation_error: str | None = None

    @property
    def reward(self) -> float:
        return sum(t.reward for t in self.turns)

    def outcome(self) -> schema.EpisodeOutcome:
        return schema.EpisodeOutcome(
            success=float(bool(self.turns) and self.turns[-1].won and self.generation_error is None),
            episode_length=len(self.turns),
            invalid_action_rate=sum(not t.action_valid for t in self.turns) / max(len(self.turns), 1),
            env_error=float(self.fault is not None),
        )


async def play_episode(
    spec: EpisodeSpec,
    generate: Generate,
    max_turns: int | None = None,
    history_length: int = 2,
    env_timeout_s: float = 60.0,
    env_workers: int | None = None,
    pools_per_machine: int = 1,
) -> Episode | None:
    """Play the episode ``spec`` asks for, with ``generate(messages) -> Generation`` as the model.

    Turn limit: the dataset row's (``spec.max_turns``), else ``max_turns``, else the environment
    class's ``default_max_turns``.

    ``env_workers``: worker processes for the environment (None: its class's ``worker_processes``; 0:
    this process), at most the cores divided among ``pools_per_machine`` processes running episodes.
    Returns None when the environment cannot be built or reset (logged; counted by the process's
    next episode, see :data:`_RESET_FAILURES`). Environment faults and :class:`GenerationFailed`
    end the episode early; any other error of ``generate`` propagates (verl fails the group).
    """
    cls = env_class(spec.env)  # an unknown name is a configuration error, raised as such
    max_turns = spec.max_turns or max_turns or cls.default_max_turns
    where = f"{spec.env} seed={spec.seed}"
    env_thread = EnvThread(spec.env)
    workers = cls.worker_processes if env_workers is None else env_workers
    if workers:  # the environment lives in a worker process, which enforces the timeout past queueing
        pool = worker_pool(default_workers(workers, pools_per_machine))
        build, timeout = functools.partial(RemoteEnv, pool, spec.env, spec.env_options, env_timeout_s), None
    else:
        build, timeout = functools.partial(cls, **spec.env_options), env_timeout_s

    async def call(fn: Callable, *args: Any) -> Any:
        return await env_thread.call(fn, *args, timeout=timeout)

    try:
        try:
            env = await call(build)
            observation, info = checked_reset(await call(env.reset, spec.seed, spec.task or None))
        except EnvFault as fault:
            _RESET_FAILURES[fault.reason] += 1
            logger.warning("%s: the episode could not start, it is dropped: %s", where, fault)
            return None
        prompt = EpisodePrompt.for_env(spec.env, str(info.get("task", "")), history_length)
        episode = Episode(turns=[])
        for _ in range(max_turns):
            admissible = info.get("admissible_actions")
            messages = prompt.messages(observation, admissible)
            try:
                generation = await generate(messages)
            except GenerationFailed as error:
                episode.generation_error = str(error)
                logger.warning("%s: no reply from the model, the episode ends failed: %s", where, error)
                break
            parsed = parse_turn(generation.text, admissible)
            anchor, reward, done = str(info["anchor"]), 0.0, False
            if parsed.valid:
                try:
                    next_observation, reward, done, info = checked_step(await call(env.step, parsed.action))
                except EnvFault as error:
                    episode.fault, next_observation, reward = error, observation, 0.0
                refused = info.get(INVALID_ACTION) if episode.fault is None else None
                if refused:
                    parsed, reward = parsed.refused(), 0.0
                    prompt.record_invalid(observation, str(refused))
                else:
                    prompt.record(observation, parsed.action)
                observation = next_observation
            else:
                prompt.record_invalid(observation, parsed.reason.value)
            episode.turns.append(
                TurnRecord(
                    generation=generation,
                    messages=messages,
                    action=parsed.action,
                    anchor=anchor,
                    reward=reward,
                    parse_reason=parsed.reason.value,
                    action_valid=parsed.valid,
                    format_valid=parsed.format_valid,
                    won=episode.fault is None and bool(info.get("won", False)),
                )
            )
            if done or episode.fault is not None:
                break
        if episode.fault is not None:
            logger.warning("%s: the episode ends failed after %d turn(s): %s", where, len(episode.turns), episode.fault)
        if episode.fault is None or episode.fault.reason != TIMEOUT:
            try:
                await call(env.close)
            except EnvFault as close_fault:  # the finished episode stands
                episode.close_failed = True
                logger.warning("%s: close failed, the episode is kept: %s", where, close_fault)
        return episode
    finally:
        env_thread.stop()


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
        env_workers: int | None = None,
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
        if env_workers is not None and env_workers < 0:
            raise ValueError(f"sampo_env_agent: env_workers must be >= 0, got {env_workers}")
        self.env_timeout_s, self.env_workers = float(env_timeout_s), env_workers
        # verl runs this many agent-loop worker processes, each with its own environment pool
        self.loop_workers = int(OmegaConf.select(self.config, "actor_rollout_ref.rollout.agent.num_workers") or 1)
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
        traj_uid = f"{kwargs['uid']}_{kwargs.get('session_id', 0)}" if "uid" in kwargs else uuid4().hex
        spec = EpisodeSpec.from_row(kwargs)
        episode = await self.play(spec, traj_uid, sampling_params)
        return [] if episode is None else self._outputs(episode, traj_uid, spec.seed)

    async def play(self, spec: EpisodeSpec, traj_uid: str, sampling_params: dict[str, Any]) -> Episode | None:
        """One episode with this loop's model and options (:func:`play_episode`)."""

        async def generate(messages: list[dict]) -> Generation:
            return await self._generate(messages, traj_uid, sampling_params)

        return await play_episode(
            spec, generate, self.max_turns, self.history_length, self.env_timeout_s, self.env_workers, self.loop_workers
        )

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
        response_ids = (merge.token_ids[len(merge.token_ids) - n :] if n else [])[: self.response_length]
        return Generation(
            prompt_ids=merge.token_ids[: len(merge.token_ids) - n],
            response_ids=response_ids,
            response_logprobs=logprobs[: self.response_length] if logprobs else None,
            server_extra=dict(output.extra_fields),
            generate_s=timing["generate_sequences"],
            text=self.tokenizer.decode(response_ids, skip_special_tokens=True),
        )

    def _outputs(self, played: Episode, traj_uid: str, task_seed: int) -> list[AgentLoopOutput]:
        turns, episode_reward = played.turns, played.reward
        episode = played.outcome()
        incidents = schema.EnvIncidents(
            reason=played.fault.reason if played.fault else "",
            close_failed=played.close_failed,
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
                task_seed=task_seed,
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
