"""The training engine, gatelab's only importer of TensorFlow: models, and the two compiled
loops (one run, or a population of runs) with the host-side scaffolding they share."""
