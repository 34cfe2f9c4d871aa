"""Cold-start evaluation: the protocol, the rankers (model and baselines), metrics and the report."""
