"""``python -m sampo_verl.bc`` (``sampo-verl bc``): behaviour cloning (:func:`sampo_verl.bc.train.main`)."""

from sampo_verl.bc.train import main

main()
