"""What is particular to the QEMU backend: its kernel and initramfs, the console, keyboard and screen,
reboots, QEMU's own faults, and containers and VMs on one network."""
