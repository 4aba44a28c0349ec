"""The seed's example: two machines, each pings the other by name."""

import herd

test = herd.Test(
    name="ping",
    machines={"machine1": {}, "machine2": {}},
    script="""
start_all()
machine1.succeed("ping -c 1 machine2")
machine2.succeed("ping -c 1 machine1")
""",
)
