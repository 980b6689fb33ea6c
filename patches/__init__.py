"""Monkeypatches of verl 0.9.1 (import name ``sampo_verl.patches``), one module per patch.

Each module names the verl file/function it works around and why registration cannot do it,
and exposes an idempotent ``apply()``. Every patch is inert on the platforms verl supports
natively: it changes behaviour only when verl's device is ``cpu``.
"""
