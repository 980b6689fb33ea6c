#!/usr/bin/env bash
# sokoban x sapo (sampo_verl/conf/method/sapo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Extra hydra overrides pass through, e.g.: bash recipes/sokoban_sapo.sh trainer.total_training_steps=20
exec bash "$(dirname "$0")/common.sh" sokoban sapo "$@"
