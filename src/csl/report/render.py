"""Render the report as a self-contained HTML page (images inlined) and a Markdown twin."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

COLUMNS = [  # the pretraining table; the evaluation is a table of its own (one row per metric)
    ("variant", "variant", "{}"),
    ("method", "method", "{}"),
    ("encoder", "encoder", "{}"),
    ("epochs", "epochs", "{}"),
    ("images_per_s", "pretrain images/s", "{:,.0f}"),
    ("pretrain_seconds", "pretrain wall time", "{:.0f} s"),
]


Columns = list[tuple[str, str, str]]  # (key, header, format)
# an extra table: (heading, columns, rows)
Table = tuple[str, Columns, list[dict[str, Any]]]


def _fmt(row: dict[str, Any], key: str, fmt: str) -> str:
    v = row.get(key)
    return "–" if v is None or v == "" else fmt.format(v)


def _md_table(columns: Columns, rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_fmt(r, k, f) for k, _, f in columns) + " |" for r in rows]


def _html_table(columns: Columns, rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r, k, f))}</td>" for k, _, f in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown(title: str, rows: list[dict[str, Any]], figures: list[tuple[str, str]], notes: list[str],
             tables: list[Table] | None = None) -> str:
    lines = [f"# {title}", "", *_md_table(COLUMNS, rows), ""]
    lines += [f"- {n}" for n in notes]
    lines.append("")
    for heading, columns, extra in tables or []:
        lines += [f"## {heading}", "", *_md_table(columns, extra), ""]
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    return "\n".join(lines)


def html_page(title: str, rows: list[dict[str, Any]], figures: list[tuple[str, str]], notes: list[str],
              directory: Path, tables: list[Table] | None = None) -> str:
    extra = "".join(f"<h2>{html.escape(h)}</h2>{_html_table(c, r)}" for h, c, r in tables or [])
    figs = []
    for caption, file in figures:
        data = base64.b64encode((directory / file).read_bytes()).decode()
        figs.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.35rem 0.6rem; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, td:nth-child(2), td:nth-child(3) {{ text-align: left; }}
figure {{ display: inline-block; margin: 0.5rem; vertical-align: top; }}
img {{ max-width: 520px; border: 1px solid #eee; }} figcaption {{ font-size: 0.85rem; color: #555; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{_html_table(COLUMNS, rows)}
<ul>{note_items}</ul>
{extra}
{''.join(figs)}
</body></html>
"""
