"""Monkeypatches of verl 0.9.1 (import name ``sampo_verl.patches``), one module per patch.

Each module names the verl file/function it works around and why registration cannot do it,
and exposes an idempotent ``apply()``. The CPU patches are inert on the platforms verl supports
natively (they act only when verl's device is ``cpu``); ``policy_loss_sequence_metrics`` adds
metrics to verl's own losses on every device and changes nothing else.
"""
