"""When the old policy's log-probs come from the rollout (``sampo.old_log_prob``)."""

import pytest

from sampo_verl.trainer.old_log_prob import OldLogProbOptions, config_errors, old_log_prob_options, skips_forward


@pytest.mark.parametrize("estimator", ["grpo", "grpo_steps", "gigpo", "gae"])
def test_the_forward_is_skipped_when_asked_for_estimators_without_entropy(estimator):
    assert skips_forward(OldLogProbOptions(from_rollout=True), estimator)
    assert not skips_forward(OldLogProbOptions(from_rollout=False), estimator)


def test_empg_keeps_the_forward_it_reads_the_old_policys_entropy_from():
    assert not skips_forward(OldLogProbOptions(from_rollout=True), "empg")


def test_options_read_and_checked():
    assert old_log_prob_options(None) == OldLogProbOptions(from_rollout=False)
    assert old_log_prob_options({"old_log_prob": {"from_rollout": True}}).from_rollout
    with pytest.raises(ValueError, match=r"unknown sampo.old_log_prob option\(s\) \['from'\]"):
        old_log_prob_options({"old_log_prob": {"from": True}})
    assert config_errors(OldLogProbOptions(from_rollout=True), calculate_log_probs=True) == []
    assert config_errors(OldLogProbOptions(from_rollout=False), calculate_log_probs=False) == []
    (error,) = config_errors(OldLogProbOptions(from_rollout=True), calculate_log_probs=False)
    assert "actor_rollout_ref.rollout.calculate_log_probs=true" in error
