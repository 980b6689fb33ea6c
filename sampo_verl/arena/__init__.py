"""The arena: every method of the ARLArena matrix on the same testbed, and a stability report.

``sampo-verl arena report DIR`` builds the report (:mod:`sampo_verl.arena.report`) from
a results folder laid out as :mod:`sampo_verl.arena.layout` describes.
"""
