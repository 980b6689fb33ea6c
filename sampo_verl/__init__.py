"""sampo-verl: importing the package registers everything it adds into verl's registries.

verl imports it in every Ray process when ``VERL_USE_EXTERNAL_MODULES=sampo_verl`` is set.
"""
