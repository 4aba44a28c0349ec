"""Linux primitives the rest of herd is built on: the C library, processes, cgroups, seccomp filters, the
command agent that runs in every machine, and a container's boot plumbing (gate, sd_notify socket, console
tails)."""
