"""Sections → text: Markdown (titled tables and notes), one CSV of the numbers, or LaTeX (booktabs)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from .build import Section
from .frame import DASH


def _cells(value: Any, ci: Any = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    text = f"{value:.4g}" if abs(value) >= 1000 or abs(value) < 0.01 else f"{value:.1f}" if abs(value) >= 10 \
        else f"{value:.3g}"
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        text += f" ± {ci:.1f}"
    return text


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Strings for Markdown / LaTeX: `ours ± ci` in one cell, '—' for no number, signed Δ."""
    shown = pd.DataFrame(index=table.index)
    for col in table.columns:
        if str(col).endswith("| ±95"):
            continue
        if str(col).endswith("| ours"):
            ci = table.get(str(col).replace("| ours", "| ±95"))
            shown[col] = [_cells(v, c) for v, c in zip(table[col], ci if ci is not None else [None] * len(table))]
        elif str(col).endswith("| Δ"):
            shown[col] = [DASH if v is None or pd.isna(v) else f"{v:+.1f}" if abs(v) >= 0.1 else f"{v:+.2g}"
                          for v in table[col]]
        elif " | " not in str(col) and ":" not in str(col) and pd.api.types.is_float_dtype(table[col]):  # keys
            shown[col] = [DASH if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v) for v in table[col]]
        elif pd.api.types.is_float_dtype(table[col]) or str(col).endswith("| paper") or ":" in str(col):
            shown[col] = [_cells(v) if isinstance(v, (int, float)) else DASH for v in table[col]]
        else:
            shown[col] = [DASH if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                          for v in table[col]]
    return shown


_TEX = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("#", r"\#"), ("&", r"\&"), ("^", r"\^{}"),
        ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("—", "--"), ("§", r"\S{}"), ("²", r"$^2$"))


def _tex(text: str) -> str:
    for char, escaped in _TEX:
        text = text.replace(char, escaped)
    return text


def _latex(section: Section) -> str:
    """A booktabs table; `X | ours`, `X | paper`, `X | Δ` become a multicolumn `X` over ours / paper / Δ."""
    shown = _display(section.table)
    shown.columns = pd.MultiIndex.from_tuples([tuple(_tex(p) for p in (str(c).split(" | ") if " | " in str(c)
                                                                         else (str(c), ""))) for c in shown.columns])
    shown = shown.map(_tex)
    return shown.to_latex(index=False, caption=_tex(section.title), label=f"tab:{section.layout}-{section.kind}",
                          multicolumn=True, multicolumn_format="c", column_format="l" * len(shown.columns))


def render(sections: Sequence[Section], fmt: str = "md") -> str:
    """Markdown (titled tables, notes, the paper's table under each layout), one CSV (numbers, with `layout` and
    `section` columns) or LaTeX (booktabs, one table environment per section)."""
    if fmt == "csv":
        frames = [s.table.round(6).assign(layout=s.layout, section=s.kind) for s in sections if not s.table.empty]
        return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""
    parts = []
    for section in sections:
        if fmt == "md":
            head = f"## {section.title}" if section.kind != "paper" else f"#### {section.title}"
            shown = _display(section.table).rename(columns=lambda c: str(c).replace(" | ", " "))
            body = shown.to_markdown(index=False) if not section.table.empty else f"_{section.note}_"
            note = f"\n\n_{section.note}_" if section.note and not section.table.empty else ""
            parts.append(f"{head}\n\n{body}{note}")
        elif fmt == "latex":
            parts.append(f"% {section.title}: {section.note}" if section.table.empty else _latex(section))
        else:
            raise ValueError(f"unknown format {fmt!r}; use md, csv or latex")
    return "\n\n".join(parts) + "\n"
