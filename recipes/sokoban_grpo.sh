#!/usr/bin/env bash
# sokoban x grpo (sampo_verl/conf/method/grpo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Extra hydra overrides pass through, e.g.: bash recipes/sokoban_grpo.sh trainer.total_training_steps=20
exec bash "$(dirname "$0")/common.sh" sokoban grpo "$@"
