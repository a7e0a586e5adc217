"""Sparklines as inline SVG, drawn in Python: a word-sized picture of a series (changes or lag per minute over
the last hour) that an operator takes in faster than a column of numbers. No script and no library: the page
works as served, and the picture scales with the text.

A gap in the series (None: no data for that minute) breaks the line rather than being drawn as zero, so "no
traffic" and "not measured" look different. The last point is marked: it is the value people look for.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.console.markup import Html, el

WIDTH, HEIGHT, PAD = 120.0, 28.0, 2.0


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def points(values: Sequence[float | None], *, width: float = WIDTH, height: float = HEIGHT,
           pad: float = PAD) -> list[list[tuple[float, float]]]:
    """The series as runs of (x, y) in SVG coordinates (y grows downwards), one run per stretch without gaps.
    The y scale starts at zero, so a flat busy series and a flat idle one do not look alike."""
    top = max((v for v in values if v is not None), default=0.0)
    scale = (height - 2 * pad) / top if top > 0 else 0.0
    step = (width - 2 * pad) / (len(values) - 1) if len(values) > 1 else 0.0
    runs: list[list[tuple[float, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((pad + i * step, height - pad - v * scale))
    return [r for r in runs if r]


def sparkline(values: Sequence[float | None], *, label: str, kind: str = "changes",
              width: float = WIDTH, height: float = HEIGHT) -> Html:
    """An `<svg>` of `values` (oldest first). `label` is its accessible name and tooltip (say what and over
    which period, with the numbers a reader would want); `kind` picks the colour class (`changes`, `lag`,
    `failures`)."""
    shapes = []
    runs = points(values, width=width, height=height)
    for run in runs:
        if len(run) == 1:
            x, y = run[0]
            shapes.append(el("circle", cx=_fmt(x), cy=_fmt(y), r="1.2", class_="dot"))
        else:
            shapes.append(el("polyline", points=" ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in run), class_="line"))
    if runs:
        x, y = runs[-1][-1]
        shapes.append(el("circle", cx=_fmt(x), cy=_fmt(y), r="2", class_="last"))
    baseline = el("line", x1="0", y1=_fmt(height - PAD), x2=_fmt(width), y2=_fmt(height - PAD), class_="base")
    return el("svg", el("title", label), baseline, *shapes, xmlns="http://www.w3.org/2000/svg",
              viewBox=f"0 0 {_fmt(width)} {_fmt(height)}", width=_fmt(width), height=_fmt(height),
              role="img", aria_label=label, class_=f"spark {kind}")
