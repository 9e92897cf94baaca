"""Thin entry point: `python cli.py ...` runs the same Typer app as the installed `segvit`."""

from segvit.cli import main

if __name__ == "__main__":
    main()
