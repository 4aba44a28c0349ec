"""Machines with packages of their own: an MQTT broker and a client, each installed in a cached
layer over the host image (the first run builds the layers with apt, later runs reuse them)."""

import herd

test = herd.Test(
    name="mqtt",
    machines={
        "broker": {
            "packages": ["mosquitto"],
            "services": ["mosquitto"],
            "files": {"/etc/mosquitto/conf.d/herd.conf": "listener 1883\nallow_anonymous true\n"},
        },
        "client": {"packages": ["mosquitto-clients"]},
    },
    script="""
start_all()
broker.wait_for_open_port(1883)
client.succeed("mosquitto_pub -h broker -t greeting -m hello -r")
assert client.succeed("mosquitto_sub -h broker -t greeting -C 1 -W 10").strip() == "hello"
""",
)
