# The text of a herd test file (Python) for machines that boot NixOS systems.
#
# Pure: builtins only, no nixpkgs. `machines` maps each machine's name to its herd fields, where
# `image` is the store path of its NixOS system (what `system.build.toplevel` gives); `script` is
# the test script, as a NixOS test's testScript. The file declares `test`, which `herd run FILE`
# runs. JSON strings are Python string literals, so the values are written with toJSON and read
# back with json.loads: no value can break the file's syntax.
{
  name,
  machines,
  script,
  timeout ? null,
  networks ? null,
}:
let
  asHerdMachine = _: fields: fields // { image = { nixos = "${fields.image}"; }; };
  declaration = {
    inherit name script;
    machines = builtins.mapAttrs asHerdMachine machines;
  }
  // (if timeout == null then { } else { inherit timeout; })
  // (if networks == null then { } else { inherit networks; });
in
''
  # Made by herd's nix/machines.nix from NixOS configurations: run it with `herd run`.
  import json

  import herd

  test = herd.Test(**json.loads(${builtins.toJSON (builtins.toJSON declaration)}))
''
