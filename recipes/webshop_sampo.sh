#!/usr/bin/env bash
# webshop x sampo (sampo_verl/conf/method/sampo.yaml); settings and variables: recipes/common.sh, recipes/README.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_sampo.sh (see recipes/README.md).
exec bash "$(dirname "$0")/common.sh" webshop sampo "$@"
