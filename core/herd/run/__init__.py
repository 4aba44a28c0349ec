"""One run's life cycle: the driver, the machines and their API, resolving a test against the plugins,
boots, waits, signals and the output directory."""
