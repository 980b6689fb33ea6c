#!/usr/bin/env bash
# alfworld x sampo (sampo_verl/conf/method/sampo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Extra hydra overrides pass through, e.g.: bash recipes/alfworld_sampo.sh trainer.total_training_steps=20
exec bash "$(dirname "$0")/common.sh" alfworld sampo "$@"
