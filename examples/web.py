"""A web server and a client: a unit declared inline, a file placed, a port waited for."""

import herd

FETCH = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://server\").read().decode())'"

test = herd.Test(
    name="web",
    machines={
        "server": {
            "units": {
                "web.service": "[Service]\nExecStart=/usr/bin/python3 -m http.server 80 --directory /srv\n"
            },
            "files": {"/srv/index.html": "hello from server\n"},
        },
        "client": {},
    },
    script=f"""
start_all()
server.wait_for_unit("web.service")
server.wait_for_open_port(80)
with subtest("the client reaches the server by name"):
    assert "hello from server" in client.succeed({FETCH!r})
""",
)
