"""A container and a VM on one network: a service on the VM reached by name from the container,
and each pings the other. Flip either backend and the script stays the same."""

import herd

FETCH = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://vm\").read().decode())'"

test = herd.Test(
    name="mixed",
    machines={
        "vm": {
            "backend": "qemu",
            "units": {
                "web.service": "[Service]\nExecStart=/usr/bin/python3 -m http.server 80 --directory /srv\n"
            },
            "files": {"/srv/index.html": "hello from a VM\n"},
        },
        "container": {"backend": "nspawn"},
    },
    script=f"""
start_all()
vm.wait_for_unit("web.service")
vm.wait_for_open_port(80)
with subtest("the container reaches the VM's service by name"):
    assert "hello from a VM" in container.succeed({FETCH!r})
with subtest("each pings the other by name"):
    container.succeed("ping -c 1 -W 5 vm")
    vm.succeed("ping -c 1 -W 5 container")
""",
)
