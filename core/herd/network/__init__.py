"""A run's networks, whoever provides them: the address plan (`plan`), the check of each network's
provider (`providers`), and the script's requests routed to the providers (`netcontrol`). The
networks themselves are made by network provider plugins (herd-bridge's Linux bridges by default)."""
