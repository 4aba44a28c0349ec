{
  description = "herd: multi-machine integration tests on systemd-nspawn containers, VMs and more";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forEach = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # The repository: this flake sits in its nix/ folder.
      src = ./..;
    in
    {
      packages = forEach (
        pkgs:
        let
          built = import ./packages.nix { inherit pkgs src; };
        in
        built // { default = built.herd; }
      );

      devShells = forEach (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (
              py: with py; [
                pluggy
                pyflakes
                pyroute2
                stevedore
                docker
                libvirt
                pytest
                pytest-xdist
                tox
                xmlschema
              ]
            ))
            pkgs.ruff
            pkgs.mypy
            pkgs.mmdebstrap
            pkgs.qemu_kvm
            pkgs.pkgsStatic.busybox
          ];
          shellHook = ''
            export PYTHONPATH="$PWD/core:$PWD/plugins/nspawn:$PWD/plugins/docker:$PWD/plugins/qemu:$PWD/plugins/gpu:$PWD/plugins/images''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });

      # What runs in the build sandbox: every package builds and imports, herd's unit tests (no
      # root, no machine) pass, and the test file of machines.nix is valid herd.
      checks = forEach (
        pkgs:
        let
          built = self.packages.${pkgs.stdenv.hostPlatform.system};
          python = pkgs.python3.withPackages (py: [
            built.herd-testing
            py.pytest
          ]);
          generated = pkgs.writeText "test.py" (
            import ./testfile.nix {
              name = "generated";
              machines.machine.image = "/nix/store/00000000000000000000000000000000-nixos-system-machine";
              script = "start_all()";
            }
          );
        in
        {
          inherit (built) herd;
          unit = pkgs.runCommand "herd-unit-tests" { } ''
            cp -r ${src} source && chmod -R u+w source && cd source
            ${python}/bin/pytest -q -p no:cacheprovider tests/unit
            touch $out
          '';
          testfile = pkgs.runCommand "herd-generated-test-file" { } ''
            ${built.herd}/bin/python -c "import runpy; runpy.run_path('${generated}')"
            touch $out
          '';
        }
      );

      nixosModules.default = import ./module.nix { herdPackages = self.packages; };

      # herdTest { name; machines; script; }: see machines.nix.
      lib.herdTest = pkgs: import ./machines.nix { inherit pkgs nixpkgs; };
    };
}
