#!/usr/bin/env bash
# frozenlake x sampo (sampo_verl/conf/method/sampo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Extra hydra overrides pass through, e.g.: bash recipes/frozenlake_sampo.sh trainer.total_training_steps=20
exec bash "$(dirname "$0")/common.sh" frozenlake sampo "$@"
