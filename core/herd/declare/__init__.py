"""What a test declares, validated before anything starts: machines and their fields (`spec`), networks
(`netspec`), the script's source (`script`) and the check of its names (`scriptcheck`)."""
