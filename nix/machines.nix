# NixOS machine configurations turned into system closures and a herd test file.
#
#   herdTest = import ./machines.nix { inherit pkgs nixpkgs; };
#   herdTest {
#     name = "web";
#     machines.server = { config = { services.nginx.enable = true; }; services = [ "nginx.service" ]; };
#     machines.client = { config = { }; };
#     script = ''
#       start_all()
#       client.wait_until_succeeds("curl -sf http://server")
#     '';
#   }
#
# gives a derivation holding `test.py` (`herd run result/test.py`), which depends on every
# machine's system, so building it builds them. Each machine is `config` (a NixOS module) plus
# herd's guest module (`guest.nix`); its other attributes are herd's machine fields (`services`,
# `networks`, `backend`, …), and `image` is set to its system.
# The test's other attributes (name, script, timeout, networks) are testfile.nix's.
{ pkgs, nixpkgs }:
{ machines, ... }@test:
let
  system =
    machineName: machine:
    (nixpkgs.lib.nixosSystem {
      inherit (pkgs.stdenv.hostPlatform) system;
      modules = [
        ./guest.nix
        (machine.config or { })
        { networking.hostName = machineName; }
      ];
    }).config.system.build.toplevel;
  herdMachines = builtins.mapAttrs (
    machineName: machine:
    (builtins.removeAttrs machine [ "config" ]) // { image = system machineName machine; }
  ) machines;
  text = import ./testfile.nix (test // { machines = herdMachines; });
in
pkgs.writeTextDir "test.py" text
