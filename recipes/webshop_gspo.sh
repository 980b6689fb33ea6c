#!/usr/bin/env bash
# webshop x gspo (sampo_verl/conf/method/gspo.yaml); settings and variables: recipes/common.sh, recipes/README.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_gspo.sh (see recipes/README.md).
exec bash "$(dirname "$0")/common.sh" webshop gspo "$@"
