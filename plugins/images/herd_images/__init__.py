"""herd's image providers: Debian roots, OCI images and NixOS systems as what machines boot."""
