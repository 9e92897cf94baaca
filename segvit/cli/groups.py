"""A command group whose first argument, when it names none of its sub-commands, goes to a
default one: `segvit prepare ade20k` is `segvit prepare dataset ade20k` beside
`segvit prepare folder ...`, and `segvit plot figure4` is `segvit plot figure figure4` beside
`segvit plot curves ...`. Each sub-command has only its own options."""

from __future__ import annotations

import typer
from typer.core import TyperGroup


def with_default(default: str) -> type[TyperGroup]:
    """A TyperGroup class routing `GROUP ARG ...` to `GROUP DEFAULT ARG ...` when ARG is not
    one of its sub-commands (or an option such as --help)."""

    class DefaultGroup(TyperGroup):
        def resolve_command(self, ctx, args):
            if args and args[0] not in self.commands and not args[0].startswith("-"):
                args = [default, *args]
            return super().resolve_command(ctx, args)

    return DefaultGroup


def group(default: str, help: str) -> typer.Typer:
    return typer.Typer(cls=with_default(default), help=help, no_args_is_help=True)
