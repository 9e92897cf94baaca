"""Run `segvit` through its real entry point and capture what a user would see."""

import pytest

from segvit.cli import main


@pytest.fixture
def cli(capsys):
    """cli(*args) -> (exit code, stdout, stderr)."""

    def run(*args):
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return done.value.code, out.out, out.err

    return run
