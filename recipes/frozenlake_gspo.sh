#!/usr/bin/env bash
# frozenlake x gspo (sampo_verl/conf/method/gspo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Extra hydra overrides pass through, e.g.: bash recipes/frozenlake_gspo.sh trainer.total_training_steps=20
exec bash "$(dirname "$0")/common.sh" frozenlake gspo "$@"
