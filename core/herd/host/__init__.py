"""This host's side of a run: the host image machines boot, the run directory and its lock, the id ranges of
confined machines, leftovers of killed runs, and the host's limits."""
