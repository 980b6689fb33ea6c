"""TIR-Math: tool-integrated math reasoning, a math problem per episode and a sandboxed Python tool.

Each turn the policy thinks and puts exactly one of two things inside ``<action>``:

- ``<code>python code</code>``: the program runs in a fresh sandboxed Python process
  (:func:`sampo_verl.tools.sandbox.run_python`, through the process's shared pool, ``tool_timeout_s``);
  the next observation is what it printed (cut to ``max_observation_chars``), a short tail of its
  stderr, and a note when it timed out or failed;
- ``<answer>final answer</answer>``: ends the episode; reward 1 when the answer is mathematically
  equivalent to the ground truth (:func:`answers_match`), else 0.

Nothing but whitespace may surround the block, the block must be non-empty and the two tags never
appear together, nested or twice (:func:`parse_tool_action`). A malformed action runs nothing: the
state (and ``anchor``) stays, the reward is 0, the observation names the error and ``info`` carries
it as ``invalid_action`` (the agent loop counts an invalid action, with the usual penalty). The turn limit
(``default_max_turns`` = 5, as the release) ends an episode without an answer as failed.

Problems come from :mod:`sampo_verl.envs.tir_math_gen` (seeded, offline; ``kinds`` and ``difficulty``
options, or ``task={"kinds": [...], "difficulty": ...}``) or from the dataset row:
``task={"question": ..., "answer": ..., "id": ...}``, which ``sampo-verl math-tasks``
(:mod:`sampo_verl.agent.math_tasks`) writes from parquet files in verl's math format.

Answers are checked with math-verify (``pip install math-verify==0.9.0``, imported on the first
answer), its signal-based timeouts off because environments run on threads.
"""

from __future__ import annotations

import functools
import hashlib
import re
import textwrap
from dataclasses import dataclass
from typing import Any


from sampo_verl.envs.base import INVALID_ACTION, TextEnv, register_env
from sampo_verl.envs.tir_math_gen import problem

MAX_TURNS = 5
TOOL_TIMEOUT_S = 10.0  # the release's sandbox timeout
MAX_OBSERVATION_CHARS = 2048
STDERR_TAIL_CHARS = 400
ENV_NAME = "tir_math"

# answer checking -----------------------------------------------------------------------------------

MAX_ANSWER_CHARS = 200
MAX_EXPONENT = 10**5  # product of an answer's exponents: 2^{100000} is cheap to compare, 2^{10^10} is not
MAX_FACTORIAL = 1000
_MATH_WORDS = {"pi", "sqrt", "e", "i", "inf", "infty", "log", "ln", "sin", "cos", "tan", "and", "or"}
_UNIT = re.compile(r"^(?P<value>[-+]?[\d.,/\s]*\d)\s*(?P<unit>[A-Za-z]{2,}(?:[\s/^]*[A-Za-z0-9]+)*)\.?$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_LHS = re.compile(r"^[A-Za-z]\w*\s*=(?!=)\s*(?P<rhs>[^=]+)$")


def _group_at(text: str, start: int) -> str | None:
    """The content of the bracket group (``{}`` or ``()``) opening at ``text[start]``, None when unclosed."""
    opening, closing = text[start], "}" if text[start] == "{" else ")"
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] == opening) - (text[i] == closing)
        if depth == 0:
            return text[start + 1 : i]
    return None


def last_group(text: str, command: str) -> str | None:
    """The brace group after the last ``command`` (e.g. ``\\boxed``), None when absent or unclosed."""
    start = text.rfind(command + "{")
    return None if start < 0 else _group_at(text, start + len(command))


def normalize_answer(text: str) -> str:
    """Drop what does not change an answer's value: ``\\boxed{}``, ``$`` delimiters, currency, percent
    signs, units, thousands separators and a leading ``x =``; Python powers become LaTeX ones."""
    text = text.strip()
    boxed = last_group(text, "\\boxed")
    text = (boxed if boxed is not None else text).strip()
    for old, new in (("\\$", ""), ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""), ("{,}", ",")):
        text = text.replace(old, new)
    for old in ("\\%", "%", "^\\circ", "^{\\circ}", "°", "\\!", "\\,", "\\;", "\\left", "\\right", "€", "£"):
        text = text.replace(old, "")
    text = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", text).strip()
    if match := _LHS.match(text):
        text = match["rhs"].strip()
    if (match := _UNIT.match(text)) and match["unit"].split()[0].lower() not in _MATH_WORDS:
        text = match["value"].strip()
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    text = text.replace("**", "^")
    return re.sub(r"\^\s*(\d+|\([^()]*\))", lambda m: "^{" + m[1].strip("()") + "}", text).rstrip(".").strip()


def too_costly(text: str) -> bool:
    """Whether evaluating ``text`` could hang the checker (math-verify runs without a timeout here):
    towers of powers, huge exponents or factorials, or overlong answers."""
    if len(text) > MAX_ANSWER_CHARS or re.search(r"binom\s*\{?\s*\d{5,}", text):
        return True
    exponents = 1
    for match in re.finditer(r"\^\s*", text):
        rest = text[match.end() :]
        if rest[:1] in ("{", "("):
            exponent = _group_at(rest, 0)
            if exponent is None:
                return True
            after = rest[len(exponent) + 2 :]
        else:
            exponent = re.match(r"[\w.]*", rest)[0]
            after = rest[len(exponent) :]
        if "^" in exponent or "!" in exponent or after.lstrip().startswith("^"):
            return True
        exponents *= max([int(n) for n in re.findall(r"\d+", exponent)] or [1])
    if exponents > MAX_EXPONENT:
        return True
    factorials = [re.search(r"(\d*)\s*$", text[: m.start()])[1] for m in re.finditer("!", text)]
    return any(not n or int(n) > MAX_FACTORIAL for n in factorials)


@functools.cache
def _math_verify():
    try:
        import math_verify
    except ImportError as error:
        raise ImportError("tir_math checks answers with math-verify: pip install math-verify==0.9.0") from error
    return math_verify


def _rational(text: str):
    """``text`` as an exact sympy Rational (integers, decimals, ``a/b``), else None."""
    import sympy

    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)(/[-+]?\d+)?", text.replace(" ", "")):
        return None
    try:
        return sympy.Rational(text.replace(" ", ""))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def answers_match(answer: str, ground_truth: str) -> bool:
    """Whether ``answer`` is mathematically equivalent to ``ground_truth``.

    Both are normalised (:func:`normalize_answer`); equal texts match. Otherwise math-verify compares
    them (``1/2`` = ``0.5`` = ``\\frac{1}{2}``; decimals agree to 6 places). Where math-verify parses
    no value from one side, exact rationals are compared with sympy, and other answers (``Monday``,
    ``(A)``) by their text ignoring case. An answer too costly to evaluate (:func:`too_costly`) matches
    only by its text.
    """
    answer, truth = normalize_answer(answer), normalize_answer(ground_truth)
    if not answer:
        return False
    if answer.replace(" ", "") == truth.replace(" ", ""):
        return True
    if too_costly(answer) or too_costly(truth):
        return False
    mv = _math_verify()
    gold = mv.parse(f"${truth}$", parsing_timeout=None)
    target = mv.parse(f"${answer}$", parsing_timeout=None)
    if gold and target:
        return bool(mv.verify(gold, target, timeout_seconds=None))
    a, b = _rational(answer), _rational(truth)
    if a is not None and b is not None:
        return a == b
    return " ".join(answer.lower().split()) == " ".join(truth.lower().split())


# the action grammar --------------------------------------------------------------------------------

_TOOL_TAG = re.compile(r"</?(code|answer)>")
_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class ToolAction:
    """A parsed action: ``kind`` ``"code"`` / ``"answer"`` with its ``text``, or ``error`` (kind None)."""

    kind: str | None
    text: str = ""
    error: str = ""


def parse_tool_action(action: str) -> ToolAction:
    """Parse the text inside ``<action>``; never raises. Errors: ``missing_code_or_answer``,
    ``code_and_answer``, ``duplicate_tag`` (twice or nested), ``malformed_tags`` (unbalanced or out of
    order), ``text_outside_tags``, ``empty_code`` / ``empty_answer``. A Markdown fence inside
    ``<code>`` is dropped."""
    tags = list(_TOOL_TAG.finditer(action))
    names = [m[1] for m in tags]
    if not tags:
        return ToolAction(None, error="missing_code_or_answer")
    if len(set(names)) > 1:
        return ToolAction(None, error="code_and_answer")
    kind, found = names[0], [m[0] for m in tags]
    if found.count(f"<{kind}>") > 1 or found.count(f"</{kind}>") > 1:
        return ToolAction(None, error="duplicate_tag")
    if found != [f"<{kind}>", f"</{kind}>"]:
        return ToolAction(None, error="malformed_tags")
    if action[: tags[0].start()].strip() or action[tags[1].end() :].strip():
        return ToolAction(None, error="text_outside_tags")
    body = action[tags[0].end() : tags[1].start()]
    if kind == "code":
        fenced = _FENCE.match(body.strip())
        body = textwrap.dedent((fenced["body"] if fenced else body).strip("\n")).strip()
    else:
        body = body.strip()
    if not body:
        return ToolAction(None, error=f"empty_{kind}")
    return ToolAction(kind, body)


def format_output(result: Any, max_chars: int, timeout_s: float) -> str:
    """The observation of a tool call: stdout (cut to fit ``max_chars``), a stderr tail, status notes."""
    notes = []
    stderr = result.stderr.strip()
    if stderr:
        tail = stderr[-min(STDERR_TAIL_CHARS, max_chars // 4) :]
        notes.append("stderr (last lines):\n" + ("..." if len(tail) < len(stderr) else "") + tail)
    if result.timed_out:
        notes.append(f"(the program was stopped after {timeout_s:g} s)")
    elif result.exit_code != 0:
        notes.append(f"(exit code {result.exit_code})")
    stdout = result.stdout.rstrip()
    budget = max(0, max_chars - sum(len(n) + 1 for n in notes) - 40)
    if len(stdout) > budget or result.truncated:
        stdout = stdout[:budget] + "\n... (output truncated)"
    head = "Output:\n" + stdout if stdout.strip() else "Output: (nothing printed)"
    return "\n".join([head, *notes])


# the environment -----------------------------------------------------------------------------------


@register_env(ENV_NAME)
class TirMathEnv(TextEnv):
    """Solve a math problem, running Python code before giving the final answer (module docstring).

    Args:
        kinds: problem kinds of the generator (default all, :data:`tir_math_gen.KINDS`).
        difficulty: generator level 1-5, a list of levels to draw from, or None (all).
        tool_timeout_s: wall-clock limit of one program.
        max_observation_chars: bound of one observation (program output and notes).
        sandbox_mode: the sandbox's ``mode`` (:mod:`sampo_verl.tools.sandbox`; None: ``SAMPO_SANDBOX``, else ``auto``).
    """

    prompt_intro = (
        "You are solving a math problem and may run Python code. Each turn, put exactly one of these inside "
        "<action>: <code>python code</code> runs a program (a fresh Python 3 process with the standard library, "
        f"{TOOL_TIMEOUT_S:g} s limit; you see only what it prints), or <answer>final answer</answer> gives your "
        "final answer and ends the episode. Answer with the value only, e.g. 3/4 or 12, no units. "
        f"You have {MAX_TURNS} turns. Example: <action><code>print(sum(range(1, 101)))</code></action>, "
        "then after seeing 5050: <action><answer>5050</answer></action>"
    )
    default_max_turns = MAX_TURNS  # the paper's testbed and the release

    def __init__(
        self,
        kinds: list[str] | None = None,
        difficulty: int | list[int] | None = None,
        tool_timeout_s: float = TOOL_TIMEOUT_S,
        max_observation_chars: int = MAX_OBSERVATION_CHARS,
        sandbox_mode: str | None = None,
    ):
        if tool_timeout_s <= 0:
            raise ValueError(f"tir_math: tool_timeout_s must be > 0, got {tool_timeout_s}")
        if max_observation_chars < 200:
            raise ValueError(f"tir_math: max_observation_chars must be >= 200, got {max_observation_chars}")
        self.kinds, self.difficulty = kinds, difficulty
        problem(0, kinds, difficulty)  # fail here on unknown kinds or levels
        self.tool_timeout_s, self.max_observation_chars = float(tool_timeout_s), int(max_observation_chars)
        from sampo_verl.tools.sandbox import resolve_mode

        resolve_mode(sandbox_mode)  # an unknown mode, or no sandbox on this machine, fails here
        self.sandbox_mode = sandbox_mode

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        task = task or {}
        if "question" in task:
            if "answer" not in task:
                raise ValueError("tir_math: a task with a question needs its answer")
            self.problem_id, self.question, self.answer = str(task.get("id", seed)), task["question"], task["answer"]
            self.program = None  # no expert for a user's problem
        else:
            generated = problem(seed, task.get("kinds", self.kinds), task.get("difficulty", self.difficulty))
            self.problem_id, self.question, self.answer = generated.id, generated.question, generated.answer
            self.program = generated.program
        self.outputs: list[str] = []
        self.last_run: tuple[str, str] | None = None  # (code, stdout) of the last tool call
        self.won = self.done = False
        observation = "No code has been run yet."
        return observation, {**self._info(), "task": self.question}

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done:
            raise RuntimeError("tir_math: step() after the episode ended")
        parsed = parse_tool_action(action)
        if parsed.kind is None:
            observation = (
                f"Invalid action ({parsed.error}): put exactly one <code>...</code> or <answer>...</answer> "
                "inside <action>. Nothing was run."
            )
            return observation, 0.0, False, {**self._info(), INVALID_ACTION: parsed.error}
        if parsed.kind == "answer":
            self.won, self.done = answers_match(parsed.text, self.answer), True
            return f"Final answer: {parsed.text}", float(self.won), True, self._info()
        result = self._run(parsed.text)
        observation = format_output(result, self.max_observation_chars, self.tool_timeout_s)
        self.outputs.append(observation)
        self.last_run = (parsed.text, result.stdout)
        return observation, 0.0, False, self._info()

    def expert_action(self) -> str:
        """Run the generator's program, then answer with the last line it printed."""
        if self.program is None:
            raise RuntimeError(f"tir_math: no expert for problem {self.problem_id!r} (a dataset task)")
        if self.last_run is not None and self.last_run[0] == self.program.strip():
            printed = [line.strip() for line in self.last_run[1].splitlines() if line.strip()]
            if printed:
                return f"<answer>{printed[-1]}</answer>"
        return f"<code>\n{self.program}</code>"

    def _run(self, code: str) -> Any:
        from sampo_verl.tools.sandbox import shared_pool

        return shared_pool().run(code, timeout_s=self.tool_timeout_s, mode=self.sandbox_mode)

    def _info(self) -> dict[str, Any]:
        seen = hashlib.blake2b("\0".join(self.outputs).encode(), digest_size=8).hexdigest()
        return {"anchor": f"{self.problem_id}|{len(self.outputs)}|{seen}", "won": self.won}
