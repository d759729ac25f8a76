from spectral_probe.cli import main

main()
