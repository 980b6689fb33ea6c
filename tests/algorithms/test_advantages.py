import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn

from sampo_verl.algorithms.advantages import (
    compute_empg_advantage,
    compute_gigpo_advantage,
    compute_grpo_steps_advantage,
)
from sampo_verl.algorithms.multi_turn import (
    ANCHOR,
    ENTROPY,
    STEP_REWARD,
    required_fields,
    required_tensor_fields,
    validate_fields,
)

T = 4


def make_batch(rows):
    """rows: (uid, traj_uid, step, anchor, step_reward, episode_reward, action_valid) tuples."""
    cols = list(zip(*rows))
    uid = np.array(cols[0], dtype=object)
    non_tensor = {
        "traj_uid": np.array(cols[1], dtype=object),
        "step": np.array(cols[2], dtype=np.int64),
        "anchor": np.array(cols[3], dtype=object),
        "step_reward": np.array(cols[4], dtype=np.float64),
        "episode_reward": np.array(cols[5], dtype=np.float64),
        "action_valid": np.array(cols[6], dtype=bool),
    }
    mask = torch.ones(len(rows), T)
    mask[:, -1] = 0  # one padding token per row
    return uid, non_tensor, mask


def run(fn, rows, config, batch=None):
    uid, non_tensor, mask = make_batch(rows)
    adv, ret = fn(torch.zeros_like(mask), mask, index=uid, config=config, non_tensor_batch=non_tensor, batch=batch)
    assert torch.equal(adv, ret)
    assert torch.all(adv[:, -1] == 0)  # masked
    assert torch.allclose(adv[:, :-1], adv[:, :1].expand(-1, T - 1))  # constant over response tokens
    return adv[:, 0].double().numpy()


# Rows deliberately out of (episode, step) order. uid "a": episode a0 (2 turns, reward 1), a1 (3 turns,
# reward 0, turn 1 invalid: the estimator subtracts the 0.1 penalty from that turn's step reward and score);
# uid "b": b0 (reward 1) and b1 (reward 0), one turn each, anchor "s" like a's
# first turns, so grouping must respect uid.
ROWS = [
    ("a", "a1", 2, "u", 0.0, 0.0, True),
    ("a", "a0", 1, "t", 1.0, 1.0, True),
    ("b", "b1", 0, "s", 0.0, 0.0, True),
    ("a", "a1", 0, "s", 0.0, 0.0, True),
    ("a", "a0", 0, "s", 0.0, 1.0, True),
    ("a", "a1", 1, "t", 0.0, 0.0, False),
    ("b", "b0", 0, "s", 1.0, 1.0, True),
]
# by hand, penalty 0.1: R = [0, 1, 0, 0, 1, -0.1, 1]; group a mean 1.9/5 = 0.38, group b mean 0.5
EPISODE_MEAN_NORM = np.array([-0.38, 0.62, -0.5, -0.38, 0.62, -0.48, 0.5])
# gamma 0.5, the penalty on its own turn after discounting (the release's placement):
# G(a0) = [0.5, 1], G(a1) = [0, 0, 0] - [0, 0.1, 0] = [0, -0.1, 0], G(b0) = 1, G(b1) = 0
# step groups (a,s): {0.5, 0} -> +-0.25; (a,t): {1, -0.1} -> +-0.55; (a,u) singleton -> 0; (b,s): {1, 0} -> +-0.5
STEP_MEAN_NORM = np.array([0.0, 0.55, -0.5, -0.25, 0.25, -0.55, 0.5])
# penalty_placement=discounted: r(a1) = [0, -0.1, 0] discounted, G(a1) = [-0.05, -0.1, 0]:
# (a,s): {0.5, -0.05} -> +-0.275, the rest as above
STEP_MEAN_NORM_DISCOUNTED = np.array([0.0, 0.55, -0.5, -0.275, 0.275, -0.55, 0.5])


def cfg(section, gamma=0.5, **options):
    return OmegaConf.create({"gamma": gamma, section: options})


def test_registered_in_verl():
    assert get_adv_estimator_fn("gigpo") is compute_gigpo_advantage
    assert get_adv_estimator_fn("empg") is compute_empg_advantage
    assert get_adv_estimator_fn("grpo_steps") is compute_grpo_steps_advantage


def test_grpo_steps_mean_norm_over_steps():
    out = run(compute_grpo_steps_advantage, ROWS, cfg("grpo_steps", mode="mean_norm"))
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM, atol=1e-6)


def test_grpo_steps_mean_std_norm_over_steps():
    out = run(compute_grpo_steps_advantage, ROWS, cfg("grpo_steps", mode="mean_std_norm"))
    # group a: squared deviations 0.62^2*2 + 0.38^2*2 + 0.48^2 = 1.288, unbiased std sqrt(1.288/4);
    # group b: {1, 0} -> std sqrt(0.5)
    std_a, std_b = np.sqrt(1.288 / 4), np.sqrt(0.5)
    std = np.array([std_a, std_a, std_b, std_a, std_a, std_a, std_b])
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM / (std + 1e-6), atol=1e-5)


def test_grpo_steps_one_value_per_episode():
    out = run(compute_grpo_steps_advantage, ROWS, cfg("grpo_steps", mode="mean_norm", episode_stats="episodes"))
    # episode scores: a0 = 1, a1 = mean(0, -0.1, 0) = -1/30; group a mean 29/60
    expected = np.array([-29 / 60, 31 / 60, -0.5, -29 / 60, 31 / 60, -0.1 - 29 / 60, 0.5])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_invalid_penalty_coefficient():
    out = run(compute_grpo_steps_advantage, ROWS, cfg("grpo_steps", mode="mean_norm", invalid_penalty=0.0))
    # R = [0, 1, 0, 0, 1, 0, 1]: group a mean 0.4
    np.testing.assert_allclose(out, [-0.4, 0.6, -0.5, -0.4, 0.6, -0.4, 0.5], atol=1e-6)


def test_gigpo_penalty_enters_step_returns_once():
    out = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode="mean_norm", invalid_penalty=0.0))
    # no penalty: G(a0) = [0.5, 1], G(a1) = [0, 0, 0]: (a,s) {0.5, 0} -> +-0.25, (a,t) {1, 0} -> +-0.5
    episode = np.array([-0.4, 0.6, -0.5, -0.4, 0.6, -0.4, 0.5])
    step = np.array([0.0, 0.5, -0.5, -0.25, 0.25, -0.5, 0.5])
    np.testing.assert_allclose(out, episode + step, atol=1e-6)


def test_gigpo_hand_computed():
    out = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode="mean_norm"))
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM + STEP_MEAN_NORM, atol=1e-6)
    turn = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode="mean_norm", penalty_placement="turn"))
    np.testing.assert_array_equal(turn, out)  # the default


def test_gigpo_penalty_discounted_into_earlier_turns():
    out = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode="mean_norm", penalty_placement="discounted"))
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM + STEP_MEAN_NORM_DISCOUNTED, atol=1e-6)


def test_gigpo_step_weight():
    out = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode="mean_norm", step_weight=0.5))
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM + 0.5 * STEP_MEAN_NORM, atol=1e-6)


@pytest.mark.parametrize("mode", ["mean_norm", "mean_std_norm"])
@pytest.mark.parametrize("stats", ["steps", "episodes"])
def test_gigpo_without_step_term_is_the_episode_term(mode, stats):
    gigpo = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode=mode, episode_stats=stats, step_weight=0.0))
    grpo = run(compute_grpo_steps_advantage, ROWS, cfg("grpo_steps", mode=mode, episode_stats=stats))
    np.testing.assert_array_equal(gigpo, grpo)


def test_gigpo_mean_std_norm_step_pairs():
    gigpo = run(compute_gigpo_advantage, ROWS, cfg("gigpo", mode="mean_std_norm"))
    episode = run(compute_grpo_steps_advantage, ROWS, cfg("grpo_steps", mode="mean_std_norm"))
    # a pair {x, y} normalised by its unbiased std gives +-1/sqrt(2); the singleton (a, u) gets 0
    np.testing.assert_allclose(gigpo - episode, np.sign(STEP_MEAN_NORM) / np.sqrt(2), atol=1e-5)


def test_gigpo_gamma_from_algorithm_config():
    # gamma 1: G(a0) = [1, 1], G(a1) = [0, -0.1, 0]: (a,s) {1, 0} -> +-0.5, (a,t) {1, -0.1} -> +-0.55
    out = run(compute_gigpo_advantage, ROWS, cfg("gigpo", gamma=1.0, mode="mean_norm"))
    step = np.array([0.0, 0.55, -0.5, -0.5, 0.5, -0.55, 0.5])
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM + step, atol=1e-6)
    # discounted: G(a1) = [-0.1, -0.1, 0]: (a,s) {1, -0.1} -> +-0.55
    out = run(compute_gigpo_advantage, ROWS, cfg("gigpo", gamma=1.0, mode="mean_norm", penalty_placement="discounted"))
    step = np.array([0.0, 0.55, -0.5, -0.55, 0.55, -0.55, 0.5])
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM + step, atol=1e-6)


def test_gigpo_reads_verl_algo_config_dataclass():
    # a plain AlgoConfig has no gigpo section: defaults (mean_std_norm) and its gamma
    algo = AlgoConfig(gamma=0.5)
    out = run(compute_gigpo_advantage, ROWS, algo)
    expected = run(compute_gigpo_advantage, ROWS, cfg("gigpo", gamma=0.5))
    np.testing.assert_array_equal(out, expected)


def test_singleton_groups():
    rows = [("solo", "e", 0, "s", 1.0, 2.0, True), ("solo", "e", 1, "t", 0.0, 2.0, True)]
    # mean_norm: all R equal -> 0; step groups of one -> 0
    np.testing.assert_allclose(run(compute_gigpo_advantage, rows, cfg("gigpo", mode="mean_norm")), [0, 0])
    one = [("solo", "e", 0, "s", 1.0, 2.0, True)]
    assert run(compute_gigpo_advantage, one, cfg("gigpo", mode="mean_norm"))[0] == 0.0
    # mean_std_norm: a group of one has mean 0, std 1 (verl's GRPO convention)
    np.testing.assert_allclose(run(compute_gigpo_advantage, one, cfg("gigpo", mode="mean_std_norm")), [2 / (1 + 1e-6)])
    episodes = cfg("grpo_steps", mode="mean_std_norm", episode_stats="episodes")
    np.testing.assert_allclose(run(compute_grpo_steps_advantage, rows, episodes), [2 / (1 + 1e-6)] * 2)


def test_grpo_steps_matches_verl_grpo_on_single_turn_episodes():
    rng = np.random.default_rng(0)
    uid = np.array(["p0"] * 4 + ["p1"] * 3 + ["p2"], dtype=object)
    reward = rng.normal(size=8)
    rows = [(u, f"e{i}", 0, "s", 0.0, r, True) for i, (u, r) in enumerate(zip(uid, reward))]
    ours = run(compute_grpo_steps_advantage, rows, cfg("grpo_steps", mode="mean_std_norm"))
    mask = torch.ones(8, T)
    mask[:, -1] = 0
    token_rewards = torch.zeros(8, T, dtype=torch.float64)
    token_rewards[:, 0] = torch.from_numpy(reward)
    verl_adv, _ = compute_grpo_outcome_advantage(token_rewards, mask.double(), uid)
    np.testing.assert_allclose(ours, verl_adv[:, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_similarity_grouping_of_text_anchors():
    rows = [
        ("a", "e0", 0, "You are in the kitchen. You see a mug.", 1.0, 1.0, True),
        ("a", "e1", 0, "You are in the kitchen. You see a cup.", 0.0, 0.0, True),
    ]
    exact = run(compute_gigpo_advantage, rows, cfg("gigpo", mode="mean_norm"))
    np.testing.assert_allclose(exact, [0.5, -0.5])  # different anchors: step groups of one
    similar = run(compute_gigpo_advantage, rows, cfg("gigpo", mode="mean_norm", similarity_threshold=0.8))
    np.testing.assert_allclose(similar, [1.0, -1.0])  # one step group: +-0.5 added
    strict = run(compute_gigpo_advantage, rows, cfg("gigpo", mode="mean_norm", similarity_threshold=0.99))
    np.testing.assert_allclose(strict, exact)


def cluster_of(texts, threshold, rule):
    from sampo_verl.algorithms.advantages import similar_anchor_ids

    return similar_anchor_ids(np.array(texts, dtype=object), np.zeros(len(texts), dtype=int), threshold, rule).tolist()


def test_similarity_rules_by_hand():
    # difflib ratio("abcd", "abce") = 0.75, ratio("abce", "abef") = 0.75, ratio("abcd", "abef") = 0.5
    texts = ["abce", "abcd", "abef"]
    # sorted: abcd opens cluster 0; abce joins it (0.75); abef vs abcd 0.5 -> new cluster
    assert cluster_of(texts, 0.7, "sorted") == [0, 0, 1]
    # release: batch order; abce opens, abcd joins (0.75), abef joins too (0.75 against abce)
    assert cluster_of(texts, 0.7, "release") == [0, 0, 0]
    # the order matters for the release rule: a chain x ~ y ~ z with x !~ z
    chain = ["aaaa", "aaab", "aabb"]  # ratios: aaaa/aaab 0.75, aaab/aabb 0.75, aaaa/aabb 0.5
    assert cluster_of(chain, 0.7, "release") == [0, 0, 1]
    assert cluster_of([chain[1], chain[0], chain[2]], 0.7, "release") == [0, 0, 0]  # aaab first: all join it
    assert cluster_of([chain[1], chain[0], chain[2]], 0.7, "sorted") == [0, 0, 1]  # as sorted: aaaa first


def test_similarity_autojunk_on_long_anchors():
    # 200+ characters: difflib's autojunk ignores characters that make up over 1% of the second text (here
    # every character), so the release rule misses a match that the sorted rule (autojunk off) finds
    import difflib
    import random

    rng = random.Random(0)
    base = "".join(rng.choice("abcdefghij klmnop") for _ in range(300))
    texts = [base, base[:150] + "XYZ" + base[153:]]

    assert (
        difflib.SequenceMatcher(None, texts[1], texts[0]).ratio()
        < 0.9
        < difflib.SequenceMatcher(None, texts[0], texts[1], autojunk=False).ratio()
    )
    assert cluster_of(texts, 0.9, "sorted") == [0, 0]
    assert cluster_of(texts, 0.9, "release") == [0, 1]


def test_steps_need_not_be_contiguous():
    # turn order comes from sorting steps: steps 3, 7, 20 behave as 0, 1, 2
    renumbered = [(u, e, {0: 3, 1: 7, 2: 20}[t], *rest) for u, e, t, *rest in ROWS]
    config = cfg("gigpo", mode="mean_norm")
    expected = run(compute_gigpo_advantage, ROWS, config)
    np.testing.assert_array_equal(run(compute_gigpo_advantage, renumbered, config), expected)


def test_similarity_grouping_ignores_row_order():
    texts = ["kitchen, mug on table", "kitchen, mug on tabel", "garden", "kitchen, cup on table", "gardens"]
    rows = [("a", f"e{i}", 0, text, float(i), float(i % 2), True) for i, text in enumerate(texts)]
    config = cfg("gigpo", mode="mean_std_norm", similarity_threshold=0.85)
    base = run(compute_gigpo_advantage, rows, config)
    for perm in ([4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        np.testing.assert_allclose(run(compute_gigpo_advantage, [rows[i] for i in perm], config), base[perm], atol=1e-9)


def test_empg_hand_computed():
    rows = [
        ("a", "a0", 0, "s", 0.0, 1.0, True),
        ("a", "a0", 1, "t", 1.0, 1.0, True),
        ("a", "a1", 0, "s", 0.0, 0.0, True),
    ]
    entropys = torch.tensor([[0.0, 0.0, 0.0, 9.0], [1.0, 1.0, 1.0, 9.0], [1.0, 2.0, 3.0, 9.0]])  # last token masked
    out = run(compute_empg_advantage, rows, cfg("empg", mode="mean_norm"), batch={ENTROPY: entropys})
    episode = np.array([1 / 3, 1 / 3, -2 / 3])
    h = np.array([0.0, 1.0, 2.0]) / (2.0 + 1e-6)  # mean entropies [0, 1, 2], min-max normalised
    g = np.exp(-h) / np.exp(-h).mean()
    clarity = np.array([0.05 * np.exp(-h[1]), 0.0, 0.0])  # only a0's first turn has a next turn
    modulated = g * episode + clarity
    np.testing.assert_allclose(out, modulated - modulated.mean(), atol=1e-6)
    assert abs(out.mean()) < 1e-6


def test_empg_without_modulation_is_centred_episode_term():
    rows = ROWS
    batch = {ENTROPY: torch.rand(len(rows), T)}
    out = run(compute_empg_advantage, rows, cfg("empg", mode="mean_norm", k=0.0, zeta=0.0), batch=batch)
    np.testing.assert_allclose(out, EPISODE_MEAN_NORM - EPISODE_MEAN_NORM.mean(), atol=1e-6)


# ---- property: row order does not matter -------------------------------------------------------


@st.composite
def batches(draw):
    rows = []
    for g in range(draw(st.integers(1, 3))):
        for e in range(draw(st.integers(1, 3))):
            reward = draw(st.sampled_from([0.0, 1.0]))
            for t in range(draw(st.integers(1, 4))):
                rows.append(
                    (
                        f"g{g}",
                        f"g{g}e{e}",
                        t,
                        draw(st.sampled_from("xyz")),
                        draw(st.sampled_from([0.0, 0.5])),
                        reward,
                        draw(st.booleans()),
                    )
                )
    perm = draw(st.permutations(range(len(rows))))
    return rows, list(perm)


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(["mean_norm", "mean_std_norm"]), st.sampled_from(["steps", "episodes"]))
def test_row_permutation_invariance(data, mode, stats):
    rows, perm = data
    entropys = torch.rand(len(rows), T, generator=torch.Generator().manual_seed(len(rows)))
    for fn, section in ((compute_gigpo_advantage, "gigpo"), (compute_empg_advantage, "empg")):
        config = cfg(section, gamma=0.9, mode=mode, episode_stats=stats)
        base = run(fn, rows, config, batch={ENTROPY: entropys})
        permuted = run(fn, [rows[i] for i in perm], config, batch={ENTROPY: entropys[perm]})
        np.testing.assert_allclose(permuted, base[perm], atol=1e-6)


# ---- bad input ---------------------------------------------------------------------------------


def test_required_and_missing_fields_are_named():
    assert required_fields("gigpo") == {"traj_uid", "step", "anchor", "step_reward", "episode_reward", "action_valid"}
    assert required_fields("empg") == {"traj_uid", "step", "episode_reward", "action_valid"}
    assert required_tensor_fields("empg") == {"entropy"} and required_tensor_fields("gigpo") == set()
    uid, non_tensor, mask = make_batch(ROWS)
    del non_tensor[ANCHOR], non_tensor[STEP_REWARD]
    with pytest.raises(ValueError, match=r"\['anchor', 'step_reward'\].*agent loop"):
        validate_fields("gigpo", non_tensor, None)
    with pytest.raises(ValueError, match="anchor"):
        compute_gigpo_advantage(torch.zeros_like(mask), mask, index=uid, config=None, non_tensor_batch=non_tensor)
    with pytest.raises(ValueError, match="entropy.*calculate_entropy"):
        validate_fields("empg", make_batch(ROWS)[1], {})
    with pytest.raises(ValueError, match="unknown multi-turn estimator"):
        required_tensor_fields("gae")
    # verl's compute_advantage passes no non_tensor_batch to non-gdpo estimators
    with pytest.raises(ValueError, match="traj_uid"):
        compute_grpo_steps_advantage(torch.zeros_like(mask), mask, index=uid, config=None)


@pytest.mark.parametrize("field", ["step_reward", "episode_reward"])
def test_nan_rewards_rejected(field):
    uid, non_tensor, mask = make_batch(ROWS)
    non_tensor[field] = non_tensor[field].copy()
    non_tensor[field][3] = np.nan
    with pytest.raises(ValueError, match=f"{field}.*NaN"):
        compute_gigpo_advantage(torch.zeros_like(mask), mask, index=uid, config=None, non_tensor_batch=non_tensor)


def test_empty_batch_rejected():
    uid, non_tensor, mask = make_batch(ROWS)
    empty = {k: v[:0] for k, v in non_tensor.items()}
    with pytest.raises(ValueError, match="empty batch"):
        compute_gigpo_advantage(
            torch.zeros(0, T), torch.zeros(0, T), index=uid[:0], config=None, non_tensor_batch=empty
        )


def test_inconsistent_episodes_rejected():
    def gigpo(rows):
        run(compute_gigpo_advantage, rows, None)

    with pytest.raises(ValueError, match="same \\(traj_uid, step\\)"):
        gigpo([("a", "e", 0, "s", 0.0, 1.0, True), ("a", "e", 0, "t", 0.0, 1.0, True)])
    with pytest.raises(ValueError, match="spans several uid"):
        gigpo([("a", "e", 0, "s", 0.0, 1.0, True), ("b", "e", 1, "t", 0.0, 1.0, True)])
    with pytest.raises(ValueError, match="episode_reward.*differs"):
        gigpo([("a", "e", 0, "s", 0.0, 1.0, True), ("a", "e", 1, "t", 0.0, 0.0, True)])


@pytest.mark.parametrize(
    "section, options, message",
    [
        ("gigpo", {"mode": "zscore"}, "algorithm.gigpo.mode"),
        ("gigpo", {"episode_stats": "groups"}, "algorithm.gigpo.episode_stats"),
        ("gigpo", {"similarity_threshold": 1.0}, "algorithm.gigpo.similarity_threshold"),
        ("gigpo", {"similarity_rule": "fuzzy"}, "algorithm.gigpo.similarity_rule"),
        ("gigpo", {"penalty_placement": "episode"}, "algorithm.gigpo.penalty_placement"),
        ("gigpo", {"invalid_penalty": -1}, "algorithm.gigpo.invalid_penalty"),
        ("gigpo", {"step_wieght": 1.0}, "unknown algorithm.gigpo option"),
        ("empg", {"zeta": float("nan")}, "algorithm.empg.zeta"),
        ("grpo_steps", {"k": 1.0}, "unknown algorithm.grpo_steps option"),
    ],
)
def test_bad_options_name_the_flag(section, options, message):
    fn = {"gigpo": compute_gigpo_advantage, "empg": compute_empg_advantage, "grpo_steps": compute_grpo_steps_advantage}
    with pytest.raises(ValueError, match=message):
        run(fn[section], ROWS, cfg(section, **options), batch={ENTROPY: torch.zeros(len(ROWS), T)})


def naive_clusters(texts, threshold, rule):
    """The documented rule written plainly: every pair through difflib, no bound, no cached matcher."""
    import difflib

    order = sorted(set(texts)) if rule == "sorted" else list(dict.fromkeys(texts))
    reps, of = [], {}
    for text in order:
        for c, rep in enumerate(reps):
            if rule == "sorted":
                ratio = difflib.SequenceMatcher(None, rep, text, autojunk=False).ratio()
            else:
                ratio = difflib.SequenceMatcher(None, text, rep).ratio()
            if ratio >= threshold:
                of[text] = c
                break
        else:
            of[text] = len(reps)
            reps.append(text)
    return [of[t] for t in texts]


@pytest.mark.parametrize("rule", ["sorted", "release"])
@pytest.mark.parametrize("threshold", [0.6, 0.9, 0.97])
def test_similarity_clusters_equal_the_plain_rule(rule, threshold):
    rng = np.random.default_rng(1)
    words = ["mug", "cup", "table", "fridge", "drawer 1", "drawer 2", "countertop", "apple", "the"]
    texts = [" ".join(rng.choice(words, size=rng.integers(3, 40))) for _ in range(60)]
    texts += [t[: len(t) // 2] + "x" + t[len(t) // 2 + 1 :] for t in texts[:20]]  # near duplicates
    texts = [texts[i] for i in rng.integers(0, len(texts), 120)]  # repeats, batch order
    expected = naive_clusters(texts, threshold, rule)
    got = cluster_of(texts, threshold, rule)
    # same partition (ids may be numbered alike, but compare the grouping itself)
    assert [got.index(g) for g in got] == [expected.index(e) for e in expected]
