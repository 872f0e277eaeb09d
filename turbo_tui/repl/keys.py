"""Key bindings of the REPL prompt.

* Enter on a line that ends with ``\\`` continues the prompt on a new line (the reference's
  multi-line convention); Alt-Enter / Esc-Enter always inserts a new line.
* Ctrl-C clears the line (the loop catches it); during a turn it cancels the turn.
* Ctrl-D on an empty line leaves.
* F2 toggles the image/output path questions; F1 shows the help.
"""

from __future__ import annotations

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from turbo_tui.repl.state import ReplState


def build_key_bindings(state: ReplState) -> KeyBindings:
    kb = KeyBindings()

    @Condition
    def continues() -> bool:
        from prompt_toolkit.application.current import get_app

        buf = get_app().current_buffer
        return buf.document.is_cursor_at_the_end and buf.text.endswith("\\") and not buf.text.endswith("\\\\")

    @kb.add("enter", filter=continues)
    def _continue(event: KeyPressEvent) -> None:
        buf = event.current_buffer
        buf.delete_before_cursor(1)  # the backslash
        buf.insert_text("\n")

    @kb.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @kb.add("f1")
    def _help(event: KeyPressEvent) -> None:
        from turbo_tui.repl.commands import cmd_help

        run_in_terminal(lambda: cmd_help(state, ""))

    @kb.add("f2")
    def _paths(event: KeyPressEvent) -> None:
        state.ask_paths = not state.ask_paths
        event.app.invalidate()  # the toolbar shows the new value

    return kb
