"""The exported ``index.html``: one self-contained page, a video player per turn.

No scripts, no fonts, no links out: every ``src``/``href``/``poster`` is a relative
path to a file inside the export, and every piece of text is escaped.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence
from urllib.parse import quote

_CSS = """
:root { color-scheme: light dark; --fg: #1d2127; --bg: #f6f7f9; --card: #fff; --muted: #667085; --accent: #3b6fd8; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --bg: #15171a; --card: #1e2125; --muted: #9aa3ad; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { margin-bottom: 20px; }
h1 { margin: 0 0 4px; font-size: 22px; }
.muted { color: var(--muted); }
.turn { display: flex; flex-wrap: wrap; gap: 20px; background: var(--card); border-radius: 10px;
        padding: 16px; margin-bottom: 16px; box-shadow: 0 1px 3px rgb(0 0 0 / 12%); }
.media { flex: 1 1 420px; max-width: 720px; }
.media video { width: 100%; border-radius: 6px; background: #000; }
.info { flex: 1 1 300px; min-width: 260px; }
.info h2 { margin: 0 0 8px; font-size: 16px; }
.prompt { white-space: pre-wrap; font-size: 15px; margin: 0 0 10px; }
.status { font-size: 12px; padding: 1px 8px; border-radius: 10px; background: var(--muted); color: var(--card); }
.status.done { background: #2e9b5f; } .status.failed, .status.interrupted { background: #c4453c; }
.error { color: #c4453c; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; font-weight: 500; color: var(--muted); padding: 2px 12px 2px 0; white-space: nowrap; }
td { padding: 2px 0; word-break: break-word; }
img.input { max-width: 160px; border-radius: 4px; }
details { margin-top: 8px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _url(rel: str) -> str:
    """A relative path as an attribute value: each part percent-encoded, then HTML-escaped."""
    return _e("/".join(quote(part, safe="") for part in rel.split("/")))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "default"
    return str(value)


def _rows(items: Mapping[str, Any]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in items.items())


def _turn(t: Mapping[str, Any]) -> str:
    req = dict(t["request"])
    prompt = req.pop("prompt", "")
    req.pop("image_path", None)
    title = f"Turn {t['id']}"
    if t.get("parent_id") is not None and t.get("kind") != "turn":
        title += f" ({t['kind']} of turn {t['parent_id']})"
    star = " ★" if t.get("starred") else ""
    parts = [f'<article class="turn" id="turn-{int(t["id"])}">', '<div class="media">']
    poster = f' poster="{_url(t["thumbnail"]["path"])}"' if t.get("thumbnail") else ""
    for v in t.get("videos", []):
        parts.append(f'<video controls preload="metadata"{poster} src="{_url(v["path"])}"></video>')
    if not t.get("videos"):
        parts.append(f'<p class="muted">No video ({_e(t.get("status"))}).</p>')
    parts.append("</div>")
    parts.append('<div class="info">')
    parts.append(f'<h2>{_e(title)}{_e(star)} <span class="status {_e(t.get("status"))}">{_e(t.get("status"))}</span></h2>')
    parts.append(f'<p class="prompt">{_e(prompt)}</p>')
    if t.get("error"):
        parts.append(f'<p class="error">{_e(t["error"])}</p>')
    if t.get("note"):
        parts.append(f'<p><strong>Note:</strong> {_e(t["note"])}</p>')
    if t.get("input_image"):
        parts.append(f'<p><img class="input" alt="input image" src="{_url(t["input_image"]["path"])}"></p>')
    facts: dict[str, Any] = {}
    launch = t.get("launch") or {}
    for key in ("model", "attention", "quant_linear", "device", "dtype"):
        if key in launch:
            facts[key] = launch[key]
    facts.update(req)
    if t.get("width") and t.get("height"):
        facts["size"] = f"{t['width']}×{t['height']}, {t.get('num_frames')} frames"
    if t.get("total_s") is not None:
        facts["total time"] = f"{t['total_s']:.2f} s"
    if t.get("peak_memory_bytes"):
        facts["peak memory"] = f"{t['peak_memory_bytes'] / 2**30:.2f} GiB"
    if t.get("replay_match") is not None:
        facts["replay matches original"] = bool(t["replay_match"])
    facts["created"] = t.get("created_at")
    parts.append(f"<table>{_rows(facts)}</table>")
    timings = t.get("timings") or {}
    if timings:
        parts.append(f"<details><summary>Timings</summary><table>"
                     f"{_rows({k: f'{v:.3f} s' if isinstance(v, (int, float)) else v for k, v in timings.items()})}"
                     f"</table></details>")
    ckpts = launch.get("checkpoints") or {}
    if ckpts:
        rows = {role: (c.get("name") or c.get("path")) if isinstance(c, Mapping) else c for role, c in ckpts.items()}
        parts.append(f"<details><summary>Checkpoints</summary><table>{_rows(rows)}</table></details>")
    parts.append("</div></article>")
    return "\n".join(parts)


def render_gallery(session_name: str, exported_at: str, turns: Sequence[Mapping[str, Any]],
                   reel: str | None = None) -> str:
    """The whole page for manifest-shaped ``turns`` (paths relative to the export folder)."""
    reel_link = f' · <a href="{_url(reel)}">reel of all turns</a>' if reel else ""
    body = "\n".join(_turn(t) for t in turns)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(session_name)} · turbo-tui session</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(session_name)}</h1><div class=\"muted\">{len(turns)} turns · exported "
        f"{_e(exported_at)} by turbo-tui{reel_link}</div></header>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
