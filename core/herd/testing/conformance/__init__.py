"""herd's conformance kit: the suite every machine backend passes.

Run it against a backend with herd's pytest plugin:

    pytest --pyargs herd.testing.conformance --herd-backend NAME

It covers boot and readiness, command execution (output, status, binary data, large output,
timeouts, background processes, input), files in and out, declared units and the waits on them,
networking between two machines, shutdown and crash, and cleanup: after every case, nothing of the
run may be left on the host (see `herd.host.residue`). Cases that need a capability the backend does not
declare are skipped with the capability named; a backend that declares one must pass its cases.
"""
