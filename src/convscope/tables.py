"""Plain-text tables for the terminal (no colour codes, so output can be piped and diffed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(
    headers: Sequence[object],
    rows: Iterable[Sequence[object]],
    align: str | None = None,
    title: str | None = None,
) -> str:
    """Render rows as an aligned table; ``align`` is a string of 'l'/'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(row):
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align, strict=True)
        )

    out = []
    if title:
        out.append(title)
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)
