"""`python -m segvit.cli`: the same command, for launchers such as torchrun."""

from segvit.cli import main

main()
