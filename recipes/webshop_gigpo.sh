#!/usr/bin/env bash
# webshop x gigpo (sampo_verl/conf/method/gigpo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_gigpo.sh (see docs/gpu-recipes.md).
exec bash "$(dirname "$0")/common.sh" webshop gigpo "$@"
