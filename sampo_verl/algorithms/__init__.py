"""The algorithms: SAMPO policy loss and sequence masking (:mod:`.losses`, config in :mod:`.loss_config`),
multi-turn advantage estimators (:mod:`.advantages`), group filtering (:mod:`.filtering`) and the
collapse detector (:mod:`.diagnostics`)."""
