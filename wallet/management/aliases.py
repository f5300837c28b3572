"""Old command names kept working: `alias_of` makes a command that runs a renamed one.

An alias takes the same options and gives the same output and exit codes as the command
it stands for; its help says it is the old name, and each run starts with a one-line
notice on stderr so whoever still calls it learns the new name.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


def alias_of(command: type[BaseCommand], *, old: str, new: str) -> type[BaseCommand]:
    """A `Command` class named `old` that runs `command` (the command now named `new`)."""

    class Alias(command):
        help = f"Old name of {new} (same options, output and exit codes): {command.help}"

        def handle(self, *args: Any, **options: Any) -> None:
            self.stderr.write(f"{old} is the old name of {new}; running that.")
            super().handle(*args, **options)

    Alias.__name__ = Alias.__qualname__ = "Command"
    return Alias
