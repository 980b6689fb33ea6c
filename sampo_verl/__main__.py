"""``python -m sampo_verl COMMAND ...``: the ``sampo-verl`` command (:mod:`sampo_verl.cli`)."""

import sys

from sampo_verl.cli import main

sys.exit(main())
