"""The bridge networks between machines: addresses and names (`plan`), links through the link helper, the
firewall rule, port forwards and a run's network control."""
