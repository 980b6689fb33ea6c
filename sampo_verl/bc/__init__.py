"""Behaviour cloning: expert SFT data in the agent loop's prompt format (:mod:`.sft_data`) and
verl's SFT trainer run to an HF model directory (:mod:`.train`, ``sampo-verl bc``)."""
