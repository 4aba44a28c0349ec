# A NixOS host prepared for herd: the `herd` command with every backend, and what its machines
# need of the host (herd runs as root: give it to the users who may run tests through sudo or CI).
#
#   imports = [ herd.nixosModules.default ];
#   programs.herd.enable = true;
#   programs.herd.docker = true;   # the Docker backend, its containers' root remapped
{ herdPackages }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.programs.herd;
in
{
  options.programs.herd = {
    enable = lib.mkEnableOption "herd, multi-machine integration tests on containers and VMs";
    package = lib.mkOption {
      type = lib.types.package;
      default = herdPackages.${pkgs.stdenv.hostPlatform.system}.herd;
      defaultText = lib.literalMD "herd with every backend, from this flake";
      description = "The Python environment providing the `herd` command.";
    };
    docker = lib.mkEnableOption "the Docker engine for herd's docker backend, remapping its containers' root";
    qemu = lib.mkEnableOption "QEMU and what herd's VMs boot with (busybox for their initramfs)" // {
      default = true;
    };
    inotifyInstances = lib.mkOption {
      type = lib.types.ints.positive;
      default = 1024;
      description = ''
        fs.inotify.max_user_instances: every booting container's systemd takes about five, shared
        with the host's root; 128 stalls boots past about 25 containers.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [
      cfg.package
      pkgs.mmdebstrap # debian: images
      pkgs.iptables
    ]
    ++ lib.optionals cfg.qemu [
      pkgs.qemu_kvm
      pkgs.virtiofsd
      pkgs.pkgsStatic.busybox
    ];
    boot.kernel.sysctl."fs.inotify.max_user_instances" = cfg.inotifyInstances;
    boot.kernelModules = [
      "overlay"
      "veth"
      "bridge"
    ];
    systemd.tmpfiles.rules = [ "d /var/cache/herd 0755 root root -" ];
    virtualisation.docker = lib.mkIf cfg.docker {
      enable = true;
      daemon.settings.userns-remap = "default";
    };
  };
}
