#!/usr/bin/env bash
# webshop x sapo (sampo_verl/conf/method/sapo.yaml); settings and variables: recipes/common.sh, docs/gpu-recipes.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_sapo.sh (see docs/gpu-recipes.md).
exec bash "$(dirname "$0")/common.sh" webshop sapo "$@"
