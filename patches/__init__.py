"""Monkeypatches of verl 0.9.1 (import name ``sampo_verl.patches``), one module per patch.

Each module names the verl file/function it works around and why registration cannot do it,
and exposes an idempotent ``apply()``. The CPU patches are inert on the platforms verl supports
natively (they act only when verl's device is ``cpu``); ``policy_loss_sequence_metrics`` adds
metrics to verl's own losses on every device and changes nothing else.
"""

import os

DISABLE_VAR = "SAMPO_DISABLE_PATCHES"  # comma-separated names of optional patches to leave out


def disabled_patches(optional: set[str]) -> set[str]:
    """The names in ``$SAMPO_DISABLE_PATCHES``; any name outside ``optional`` fails naming them."""
    names = {name.strip() for name in os.environ.get(DISABLE_VAR, "").split(",") if name.strip()}
    if names - optional:
        raise ValueError(
            f"{DISABLE_VAR}: {sorted(names - optional)} are not optional patches; known: {sorted(optional)}"
        )
    return names
