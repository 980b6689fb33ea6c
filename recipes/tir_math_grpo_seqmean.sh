#!/usr/bin/env bash
# tir_math x grpo_seqmean (sampo_verl/conf/method/grpo_seqmean.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# Your own problems: DATA_DIR=~/data/tir_math bash recipes/tir_math_grpo_seqmean.sh, after sampo-verl math-tasks.
exec bash "$(dirname "$0")/common.sh" tir_math grpo_seqmean "$@"
