#!/usr/bin/env bash
# webshop x sampo (sampo_verl/conf/method/sampo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_sampo.sh (see docs/gpu-recipes.md).
exec bash "$(dirname "$0")/common.sh" webshop sampo "$@"
