"""Runs built on the package: the launcher (:mod:`.launch`), CPU agent runs (:mod:`.agent_run`,
:mod:`.toy_run`), the tiny local model (:mod:`.assets`), the CPU testbed (:mod:`.testbed`), the
quickstart (:mod:`.quickstart`) and held-out evaluation (:mod:`.evaluate`)."""
