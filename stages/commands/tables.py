"""Tables for a terminal: `srlm status` and `srlm exp` fit its width (short headers, then fewer columns)."""

from __future__ import annotations


def terminal_width() -> int:
    """The terminal's columns ($COLUMNS first); unlimited when stdout is not a terminal (a pipe, a file)."""
    import shutil

    return shutil.get_terminal_size((10**6, 24)).columns


def fit(columns, body: list[list], width: int) -> tuple[list[str], list[str]]:
    """Lines of a table no wider than `width`: long headers and cells if they fit, else the short ones (a cell
    may be a (long, short) pair), then columns dropped by rank. Returns (lines, names of dropped columns)."""

    def render(keep: list[int], short: bool) -> list[str]:
        pick = lambda c: c[1] if isinstance(c, tuple) and short else c[0] if isinstance(c, tuple) else c  # noqa: E731
        table = [[columns[i][1 if short else 0] for i in keep]] + [[pick(r[i]) for i in keep] for r in body]
        widths = [max(len(row[j]) for row in table) for j in range(len(keep))]
        return [
            "  ".join(
                cell.rjust(w) if columns[i][2] else cell.ljust(w) for i, cell, w in zip(keep, row, widths)
            ).rstrip()
            for row in table
        ]

    keep = list(range(len(columns)))
    lines = render(keep, False)
    if max(map(len, lines)) <= width:
        return lines, []
    droppable = [i for _, i in sorted((c[3], i) for i, c in enumerate(columns) if c[3] is not None)]
    fits = lambda keep: max(map(len, render(keep, True))) <= width  # noqa: E731
    dropped = []
    while not fits(keep) and droppable:
        dropped.append(droppable.pop(0))
        keep.remove(dropped[-1])
    for i in reversed(dropped):  # a wide column dropped late may leave room for narrower ones dropped before it
        if fits(sorted(keep + [i])):
            keep = sorted(keep + [i])
    return render(keep, True), [columns[i][1] for i in range(len(columns)) if i not in keep]
