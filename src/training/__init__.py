"""The training engine: the epoch loop, what a run is built from, the train step, checkpoints of a run."""
