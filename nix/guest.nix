# What a NixOS system needs to run as a herd machine, on a container backend (nspawn) or a VM
# (qemu, which boots the host's kernel with herd's initramfs and then this system's init).
#
# herd gives every machine its name, its /etc/hosts, its network addresses and the units the test
# starts (in /etc/systemd/system.control); the system leaves those to herd.
{ lib, pkgs, ... }:
{
  boot.isContainer = true; # herd brings the kernel (a VM's) or shares the host's (a container's)
  networking.useDHCP = false;
  networking.firewall.enable = lib.mkDefault false; # herd's networks are the test's own
  environment.etc.hosts.enable = false; # herd writes /etc/hosts: every machine's name resolves
  # A herd VM runs herd's command agent with /usr/bin/python3 (a container's agent enters it
  # from the host and needs nothing inside).
  systemd.tmpfiles.rules = [ "L+ /usr/bin/python3 - - - - ${pkgs.python3}/bin/python3" ];
  system.stateVersion = lib.mkDefault lib.trivial.release;
}
