#!/usr/bin/env bash
# webshop x sapo (sampo_verl/conf/method/sapo.yaml); settings and variables: recipes/common.sh, recipes/README.md.
# WebShop's own product files: WEBSHOP_DATA=~/webshop/data bash recipes/webshop_sapo.sh (see recipes/README.md).
exec bash "$(dirname "$0")/common.sh" webshop sapo "$@"
