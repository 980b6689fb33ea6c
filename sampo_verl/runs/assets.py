"""Build a tiny local tokenizer + Qwen2 / Qwen3 model directory (nothing is downloaded).

The tokenizer is a byte-level BPE trained with ``tokenizers`` on a given corpus (any text
round-trips; transformers loads ``model_type=qwen2`` checkpoints with the byte-level Qwen2
tokenizer class, so a word-level vocabulary would not survive loading), with ChatML special
tokens and chat template. Loading also swaps the pre-tokenizer for Qwen2's own split (one digit per
pre-token, words, punctuation runs); with ``qwen2_split=True`` the BPE is trained under that same split, so
every merge it learns still fires after loading (the default byte-level split keeps the tokenizers the
existing testbeds were tuned with). The model is a randomly initialised ``Qwen2ForCausalLM`` of
configurable size, or a ``Qwen3ForCausalLM`` where a head size is given apart from the width
(Qwen3's config carries one, and vLLM reads it; Qwen2's head size is always ``hidden / heads``).
Both are written with ``save_pretrained`` so verl loads the directory as ``actor_rollout_ref.model.path``.

CLI::

    sampo-verl assets OUT_DIR [--hidden 64] [--layers 2] [--heads 2] [--kv-heads 1] [--head-dim 32]
                                        [--init-std 0.02] [--vocab-size 512] [--corpus-file FILE] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedModel, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers import Qwen3Config, Qwen3ForCausalLM
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

PAD_TOKEN = "<|endoftext|>"
BOS_OF_TURN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_OF_TURN, EOS_TOKEN]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def default_corpus() -> list[str]:
    """Generic English, grid-world and action text, numbers and chat roles."""
    sentences = [
        "You are a helpful assistant. Think step by step and answer briefly.",
        "The agent is in a grid world. The goal is at the far corner of the room.",
        "Walls block the way; the agent can move north, south, east or west.",
        "Observation: you see a key, a door, a box and a table. What do you do next?",
        "Action: go to the table. Action: pick up the key. Action: open the door.",
        "The answer is correct. The answer is wrong. Please try again.",
        "What is the sum of the two numbers? The result equals the total.",
        "Search for a red shirt under 20 dollars, then click buy now.",
    ]
    grid_rows = ["".join(row) for row in itertools.product("#.@G", repeat=4)]
    actions = [
        f"{verb} {thing}"
        for verb in ("go to", "take", "put", "open", "close", "look at")
        for thing in ("the key", "the door", "the box", "the table", "the fridge", "the lamp")
    ]
    numbers = [" ".join(str(n) for n in range(start, start + 10)) for start in range(0, 100, 10)]
    roles = ["system", "user", "assistant", "tool", "<answer>", "</answer>", "<think>", "</think>"]
    return sentences * 4 + grid_rows + actions + numbers + [" ".join(roles)] * 4


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 512, qwen2_split: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (with ChatML specials and chat template) on ``corpus``; ``qwen2_split``: under
    the pre-tokenizer ``AutoTokenizer`` gives the saved tokenizer on loading (see the module docstring)."""
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} must be at least {256 + len(SPECIAL_TOKENS)} (bytes + specials)")
    bpe = Tokenizer(models.BPE())
    if qwen2_split:
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=PAD_TOKEN,
        additional_special_tokens=[BOS_OF_TURN],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@dataclass(frozen=True)
class ModelSize:
    """Model dimensions; ``heads`` must be divisible by ``kv_heads``.

    Without ``head_dim`` the model is Qwen2 and ``hidden`` must be divisible by ``heads`` (head size
    ``hidden / heads``: the default's 32 is the smallest vLLM's CPU attention serves); with it, Qwen3
    (query/key normalisation, no projection bias) with heads of ``head_dim`` at any width.
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    intermediate: int | None = None  # default 2 * hidden
    max_positions: int = 1024
    init_std: float = 0.02  # weight init std; ~0.3 gives a random model with peaked, varied outputs
    head_dim: int | None = None


def build_model(tokenizer: PreTrainedTokenizerFast, size: ModelSize = ModelSize(), seed: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM (Qwen2, or Qwen3 with ``size.head_dim``) sized for ``tokenizer``
    (tied embeddings)."""
    if size.heads % size.kv_heads or (size.head_dim is None and size.hidden % size.heads):
        raise ValueError(f"hidden={size.hidden} must divide by heads={size.heads}, heads by kv_heads={size.kv_heads}")
    vocab = -(-len(tokenizer) // 64) * 64  # rounded up to a multiple of 64
    config_class, model_class, extra = (
        (Qwen2Config, Qwen2ForCausalLM, {})
        if size.head_dim is None
        else (Qwen3Config, Qwen3ForCausalLM, {"head_dim": size.head_dim})
    )
    config = config_class(
        vocab_size=vocab,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate or 2 * size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=size.max_positions,
        tie_word_embeddings=True,
        initializer_range=size.init_std,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def build_assets(
    out_dir: str | Path,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    size: ModelSize = ModelSize(),
    seed: int = 0,
    qwen2_split: bool = False,
) -> Path:
    """Write tokenizer and model to ``out_dir`` (created if needed) and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(default_corpus() if corpus is None else corpus, vocab_size, qwen2_split)
    tokenizer.save_pretrained(out)
    build_model(tokenizer, size, seed).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=ModelSize.heads)
    parser.add_argument("--kv-heads", type=int, default=ModelSize.kv_heads)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument(
        "--head-dim",
        type=int,
        default=None,
        help="head size apart from the width (a Qwen3 model)",
    )
    parser.add_argument("--max-positions", type=int, default=1024)
    parser.add_argument("--init-std", type=float, default=0.02)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument(
        "--corpus-file",
        type=Path,
        default=None,
        help="training text, one document per line",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    corpus = args.corpus_file.read_text().splitlines() if args.corpus_file else None
    size = ModelSize(
        args.hidden,
        args.layers,
        args.heads,
        args.kv_heads,
        args.intermediate,
        args.max_positions,
        args.init_std,
        args.head_dim,
    )
    out = build_assets(args.out_dir, corpus, args.vocab_size, size, args.seed)
    print(out)


if __name__ == "__main__":
    main()
