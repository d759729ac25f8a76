"""How the command line talks to a person: the consoles (a table on stdout, or on stderr when a report
goes to stdout), the one-line ``error: ...`` (docs/SPEC.md section 8), and click's usage errors as such lines."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

#: click's base exception, found through typer's public BadParameter (typer vendors click from 0.26 on).
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineErrors(typer.core.TyperGroup):
    """click prints a usage error as four lines (usage, a hint, a blank, the error); the contract's bad
    input is one line naming the option, exit 2 (docs/SPEC.md section 8): ``error: ... (see --help)``."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """click's ``main``, with a usage error as one line on stderr and its exit code (2)."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _CLICK_EXCEPTION as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments: the help itself
                exc.show()
                sys.exit(exc.exit_code)
            context = getattr(exc, "ctx", None)
            hint = f" (see {context.command_path} --help)" if context is not None else ""
            stderr().print(error_line("error", exc.format_message() + hint), soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            stderr().print("aborted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


#: Width of the table when the output is not a terminal (rich would fall back to 80 columns and fold paths).
PIPE_WIDTH = 160


def console(stderr: bool) -> Console:
    """A rich console on stderr or stdout, as wide as the terminal (:data:`PIPE_WIDTH` in a pipe)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def stderr() -> Console:
    """The console for what a person reads beside the reports: errors, gate lines, progress."""
    return console(stderr=True)


#: Control characters (C0, DEL, C1) as escapes: a file named "a\nb" or "red\x1b[31m" would split the
#: one-line error or drive the terminal.
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


def error_line(label: str, message: str) -> Text:
    """``error: message`` with the message shown literally (a path like ``run[/]x`` is no markup), and
    control characters escaped (one line, and nothing a terminal would act on)."""
    return Text.assemble((f"{label}: ", "bold red"), message.translate(_CONTROL))
