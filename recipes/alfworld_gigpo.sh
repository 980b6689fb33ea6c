#!/usr/bin/env bash
# alfworld x gigpo (sampo_verl/conf/method/gigpo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Extra hydra overrides pass through, e.g.: bash recipes/alfworld_gigpo.sh trainer.total_training_steps=20
exec bash "$(dirname "$0")/common.sh" alfworld gigpo "$@"
