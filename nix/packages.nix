# herd's core and its plugins as Python packages, from this repository's sources, and `herd`: one
# environment holding them all (the `herd` command with every backend).
{ pkgs, src }:
let
  python = pkgs.python3;
  py = python.pkgs;
  common = {
    version = "0.1.0";
    pyproject = true;
    build-system = [ py.setuptools ];
    # The tests boot machines as root: they run in the checks and on hosts, not in the sandbox.
    doCheck = false;
  };
  plugin =
    pname: directory: dependencies:
    py.buildPythonPackage (
      common
      // {
        inherit pname;
        src = "${src}/plugins/${directory}";
        dependencies = [ herd-testing ] ++ dependencies;
        pythonImportsCheck = [ "herd_${directory}" ];
      }
    );
  herd-testing = py.buildPythonPackage (
    common
    // {
      pname = "herd-testing";
      src = pkgs.lib.fileset.toSource {
        root = src;
        fileset = pkgs.lib.fileset.unions [
          (src + "/pyproject.toml")
          (src + "/README.md")
          (src + "/LICENSE")
          (src + "/core")
        ];
      };
      dependencies = with py; [
        pluggy
        pyflakes
        pyroute2
        stevedore
      ];
      pythonImportsCheck = [ "herd" ];
    }
  );
in
rec {
  inherit herd-testing;
  herd-nspawn = plugin "herd-nspawn" "nspawn" [ ];
  herd-docker = plugin "herd-docker" "docker" [ py.docker ];
  herd-gpu = plugin "herd-gpu" "gpu" [ ];
  herd-qemu = plugin "herd-qemu" "qemu" [ py.libvirt ];
  herd-images = plugin "herd-images" "images" [ py.docker ];
  herd = python.withPackages (_: [
    herd-testing
    herd-nspawn
    herd-docker
    herd-gpu
    herd-qemu
    herd-images
  ]);
}
