"""The VM benchmark's test: one QEMU VM boots from the host image, runs one command, powers off."""

from herd import Test

test = Test(
    name="one-vm",
    machines={"vm": {"backend": "qemu", "options": {"accelerator": "tcg"}}},
    script='vm.start()\nvm.succeed("true")\n',
)
