"""The session's turns as a tree of variations, with a filter and a detail line.

Forks and replays hang under the turn they came from.  The widget only shows
:class:`TurnRow` data and posts :class:`HistoryView.Picked` / :class:`HistoryView.Requested`;
the app decides what a fork, star, replay or delete does to the session store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, Static, Tree
from textual.widgets.tree import TreeNode

from engine.api import TurnRequest
from turbo_tui.params import format_seconds, summarize
from turbo_tui.widgets.preview.halfblock import load_thumbnail, thumbnail_text

STATUS_GLYPHS = {"done": "✓", "running": "◌", "failed": "✗", "cancelled": "⊘", "interrupted": "!"}
KIND_GLYPHS = {"fork": "⑂ ", "replay": "↻ ", "turn": ""}


@dataclass(frozen=True)
class TurnRow:
    """What the history shows about one turn (built from a session record by the app)."""

    id: int
    prompt: str
    request: TurnRequest
    status: str = "done"
    parent_id: int | None = None
    kind: str = "turn"
    starred: bool = False
    note: str = ""
    video_paths: tuple[str, ...] = ()
    thumbnail_path: str | None = None
    total_s: float | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def matches(self, text: str, starred_only: bool) -> bool:
        if starred_only and not self.starred:
            return False
        text = text.strip().lower()
        return not text or text in self.prompt.lower() or text in self.note.lower()


class HistoryView(Vertical):
    DEFAULT_CSS = """
    HistoryView { height: 1fr; }
    HistoryView > Horizontal { height: 1; }
    HistoryView #history-filter { width: 1fr; }
    HistoryView #history-starred { width: auto; }
    HistoryView Tree { height: 1fr; background: $surface; }
    HistoryView #history-detail { height: auto; max-height: 6; color: $foreground 80%; padding: 0 1; }
    """

    BINDINGS = [
        Binding("s", "request('star')", "Star"),
        Binding("r", "request('replay')", "Replay"),
        Binding("f", "request('fork')", "Fork"),
        Binding("o", "request('open')", "Open video"),
        Binding("delete,d", "request('delete')", "Delete"),
        Binding("slash", "focus_filter", "Filter", show=False),
    ]

    class Picked(Message):
        """The cursor moved to a turn (the app previews it)."""

        def __init__(self, row: TurnRow) -> None:
            super().__init__()
            self.row = row

    class Requested(Message):
        """Do ``action`` (fork, star, replay, open, delete) on ``row``."""

        def __init__(self, action: str, row: TurnRow) -> None:
            super().__init__()
            self.action = action
            self.row = row

    def __init__(self, *, thumbnails: bool = True, id: str | None = "history") -> None:
        super().__init__(id=id)
        self.rows: list[TurnRow] = []
        self.thumbnails = thumbnails
        self._cursor_id: int | None = None  # the turn under the cursor (the tree lays out lazily)

    def compose(self) -> ComposeResult:
        self.border_title = "History"
        with Horizontal():
            yield Input(placeholder="filter by prompt…  (/)", id="history-filter", compact=True)
            yield Checkbox("★ only", id="history-starred", compact=True)
        tree: Tree[TurnRow] = Tree("turns", id="history-tree")
        tree.show_root = False
        tree.guide_depth = 2
        yield tree
        yield Static("", id="history-detail")

    # -- data ----------------------------------------------------------------

    @property
    def tree(self) -> Tree[TurnRow]:
        return self.query_one("#history-tree", Tree)

    @property
    def selected(self) -> TurnRow | None:
        if self._cursor_id is None:
            return None
        row = self.row(self._cursor_id)
        return row if row is not None and row in self.visible_rows() else None

    def row(self, turn_id: int) -> TurnRow | None:
        return next((r for r in self.rows if r.id == turn_id), None)

    def set_rows(self, rows: list[TurnRow], select: int | None = None) -> None:
        """Replace every row; keep the cursor on ``select`` or on the turn it was on."""
        current = self.selected
        self.rows = sorted(rows, key=lambda r: r.id)
        self._rebuild(select if select is not None else (current.id if current else None))

    def visible_rows(self) -> list[TurnRow]:
        text = self.query_one("#history-filter", Input).value
        starred = self.query_one("#history-starred", Checkbox).value
        return [r for r in self.rows if r.matches(text, starred)]

    def _rebuild(self, select: int | None) -> None:
        tree = self.tree
        tree.clear()
        visible = self.visible_rows()
        ids = {r.id for r in visible}
        nodes: dict[int, TreeNode[TurnRow]] = {}
        for row in visible:  # ids ascend, so a parent is added before its forks
            parent = nodes.get(row.parent_id) if row.parent_id in ids else None
            node = (parent or tree.root).add(self._label(row), data=row, expand=True)
            nodes[row.id] = node
        for node in nodes.values():
            node.allow_expand = bool(node.children)
        target = nodes.get(select) if select is not None else None
        if target is None and visible:
            target = nodes[visible[-1].id]
        self._cursor_id = target.data.id if target is not None and target.data is not None else None
        if target is not None:
            # The tree computes its lines on the next refresh; move the cursor after it.
            self.call_after_refresh(tree.move_cursor, target)
        self._show_detail(target.data if target is not None else None)

    def _label(self, row: TurnRow) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.thumbnails and row.thumbnail_path:
            frame = load_thumbnail(row.thumbnail_path)
            if frame is not None:
                text.append_text(thumbnail_text(frame))
                text.append(" ")
        status_style = {"done": "green", "failed": "red", "cancelled": "yellow", "interrupted": "yellow"}
        text.append(STATUS_GLYPHS.get(row.status, "?"), status_style.get(row.status, ""))
        text.append(f" #{row.id} ", "bold")
        if row.starred:
            text.append("★ ", "yellow")
        text.append(KIND_GLYPHS.get(row.kind, ""))
        prompt = row.prompt if len(row.prompt) <= 40 else row.prompt[:39] + "…"
        text.append(prompt)
        r = row.request
        text.append(f"  s{r.seed} {r.num_steps}st k{r.sla_topk:g} σ{r.effective_sigma_max:g}", "dim")
        return text

    def _show_detail(self, row: TurnRow | None) -> None:
        detail = self.query_one("#history-detail", Static)
        if row is None:
            detail.update("no turns yet" if not self.rows else "no turn matches the filter")
            return
        lines = [f"#{row.id} {row.status}" + (f" in {format_seconds(row.total_s)}" if row.total_s else "")
                 + (f" · from #{row.parent_id}" if row.parent_id else ""),
                 summarize(row.request)]
        if row.error:
            lines.append(row.error)
        if row.note:
            lines.append(f"note: {row.note}")
        detail.update(Text("\n".join(lines)))

    # -- events --------------------------------------------------------------

    @on(Input.Changed, "#history-filter")
    @on(Checkbox.Changed, "#history-starred")
    def _filter_changed(self, event: Input.Changed | Checkbox.Changed) -> None:
        event.stop()
        current = self.selected
        self._rebuild(current.id if current else None)

    @on(Tree.NodeHighlighted, "#history-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[TurnRow]) -> None:
        event.stop()
        row = event.node.data
        self._show_detail(row)
        if row is not None:
            self._cursor_id = row.id
            self.post_message(self.Picked(row))

    @on(Tree.NodeSelected, "#history-tree")
    def _selected(self, event: Tree.NodeSelected[TurnRow]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.Requested("fork", event.node.data))

    def action_request(self, action: str) -> None:
        row = self.selected
        if row is not None:
            self.post_message(self.Requested(action, row))

    def action_focus_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()
