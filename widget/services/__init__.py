"""Use cases as verb functions. Each names its account explicitly and owns its transaction."""
