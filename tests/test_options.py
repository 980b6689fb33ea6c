"""The options registry: every section the package reads is registered, and start-up validation reads
each one from the whole config, naming the flag of what it refuses."""

import sampo_verl.validation  # noqa: F401  (what start-up validation imports: every section registered)

from sampo_verl.options import OPTIONS_SECTIONS, section_errors

EXPECTED = {
    "actor_rollout_ref.actor.policy_loss.seq_mask",
    "algorithm.filter_groups",
    "algorithm.gigpo",
    "algorithm.empg",
    "algorithm.grpo_steps",
    "sampo.collapse",
    "sampo.env",
    "sampo.sampler",
    "sampo.old_log_prob",
    "sampo.validation",
}


def nested(prefix: str, section: dict) -> dict:
    config: dict = section
    for key in reversed(prefix.split(".")):
        config = {key: config}
    return config


def test_every_section_is_registered_and_reads_its_defaults_from_an_empty_config():
    assert set(OPTIONS_SECTIONS) == EXPECTED
    assert section_errors({}) == []


def test_an_unknown_key_in_any_section_is_refused_naming_the_flag():
    for prefix, section in OPTIONS_SECTIONS.items():
        errors = section_errors(nested(prefix, {"no_such_option": 1, **{key: None for key in section.ignore}}))
        assert len(errors) == 1 and f"unknown {prefix} option(s) ['no_such_option']" in errors[0], prefix
