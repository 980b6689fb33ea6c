#!/usr/bin/env bash
# webshop x grpo (sampo_verl/conf/method/grpo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_grpo.sh (see docs/gpu-recipes.md).
exec bash "$(dirname "$0")/common.sh" webshop grpo "$@"
