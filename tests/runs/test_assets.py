"""sampo-verl assets: a local byte-level tokenizer + Qwen2 that transformers and verl load."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sampo_verl.runs.assets import (
    EOS_TOKEN,
    ModelSize,
    build_assets,
    build_tokenizer,
    main,
)


def test_saved_tokenizer_round_trips_any_text_and_renders_chat(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for text in ["Action: go to the key at (3, 4)!", "ünïcödé ✓ 東京", "#.@G\n\t  x"]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_saved_model_matches_tokenizer_and_runs(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.vocab_size >= len(tokenizer) and model.config.vocab_size % 64 == 0
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    logits = model(input_ids=torch.tensor([tokenizer.encode("open the door")])).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()


def test_corpus_and_vocab_size_are_parameters():
    tokenizer = build_tokenizer(["zebracorn " * 50, "hello world " * 10], vocab_size=300)
    assert len(tokenizer) <= 300
    assert len(tokenizer.encode("zebracorn")) == 1  # learned from the given corpus
    with pytest.raises(ValueError, match="vocab_size=100"):
        build_tokenizer(["x"], vocab_size=100)


def test_model_size_is_configurable(tmp_path):
    out = build_assets(
        tmp_path,
        corpus=["a b c"] * 5,
        vocab_size=300,
        size=ModelSize(hidden=32, layers=1, heads=2, kv_heads=1),
    )
    config = AutoModelForCausalLM.from_pretrained(out).config
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_key_value_heads,
        config.intermediate_size,
    ) == (
        32,
        1,
        1,
        64,
    )
    with pytest.raises(ValueError, match="heads=3"):
        build_assets(tmp_path / "bad", size=ModelSize(hidden=32, heads=3))


def test_cli_writes_a_loadable_directory(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("north south east west\n" * 20)
    main(
        [
            str(tmp_path / "m"),
            "--hidden",
            "32",
            "--heads",
            "2",
            "--kv-heads",
            "1",
            "--vocab-size",
            "300",
            "--corpus-file",
            str(corpus),
        ]
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m").config.hidden_size == 32


def test_qwen2_split_tokenizer_encodes_the_same_after_loading(tmp_path):
    """Loading swaps in Qwen2's pre-tokenizer: a BPE trained under it keeps its ids, the byte-level one does not."""
    text = "What is the remainder when 401^2679 is divided by 17448? <code>print(pow(401, 2679, 17448))</code>"
    corpus = [text] * 20 + ["go to the table", "the answer is 42"] * 5
    encoded = {}
    for split in (False, True):
        out = build_assets(tmp_path / str(split), corpus=corpus, vocab_size=400, qwen2_split=split)
        loaded = AutoTokenizer.from_pretrained(out)
        encoded[split] = (
            build_tokenizer(corpus, 400, split).encode(text),
            loaded.encode(text),
        )
        assert loaded.decode(loaded.encode(text)) == text
    before, after = encoded[True]
    assert before == after
    assert all(
        len(loaded_piece.strip()) <= 1
        for loaded_piece in [AutoTokenizer.from_pretrained(tmp_path / "True").decode([i]) for i in after]
        if loaded_piece.strip().isdigit()
    )  # one digit per token
    before, after = encoded[False]
    assert before != after and len(after) > len(before)  # merges across the split never fire after loading


def test_a_head_size_apart_from_the_width_makes_a_qwen3_model(tmp_path):
    """4 heads of 32 at width 64: the head size vLLM's CPU attention needs, without widening the model."""
    from sampo_verl.cpu.vllm_checks import model_head_size

    out = build_assets(
        tmp_path,
        corpus=["a b c"] * 5,
        vocab_size=300,
        size=ModelSize(64, heads=4, kv_heads=2, head_dim=32),
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "qwen3" and model.config.head_dim == 32
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (
        128,
        64,
    ) and attention.k_proj.weight.shape == (64, 64)
    assert attention.o_proj.weight.shape == (64, 128)
    assert model_head_size(str(out)) == 32
    assert model_head_size(str(build_assets(tmp_path / "narrow", size=ModelSize(64, heads=4, kv_heads=2)))) == 16
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()
