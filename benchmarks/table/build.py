"""The output's sections: for each requested layout, its joined, stand-in and paper tables (`build_tables`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from ..paper_numbers import paper_numbers
from .frame import records_frame
from .join import diagnostics_table, layout_fig5, layout_other, layout_table, paper_reference
from .layouts import LAYOUT_NAMES, LAYOUTS, OTHER_TITLE, STORE_TITLE, layout_tasks, layout_title


@dataclass
class Section:
    """One titled table of the output (`kind`: joined, stand-in, paper, other, diagnostics, empty)."""

    layout: str
    kind: str
    title: str
    table: pd.DataFrame
    note: str = ""


def build_tables(records: Sequence[Mapping[str, Any]], layouts: Sequence[str] = ("all",), *,
                 diagnostics: bool = False, paper: pd.DataFrame | None = None) -> list[Section]:
    """The sections for the requested layouts. 'all': every layout that has records (none at all: one empty
    section saying so); a layout named explicitly without records gets an empty section saying so."""
    paper = paper_numbers() if paper is None else paper
    names = list(LAYOUT_NAMES) if "all" in layouts else list(layouts)
    unknown = [n for n in names if n not in LAYOUT_NAMES]
    if unknown:
        raise ValueError(f"unknown layout(s) {unknown}; known: {[*LAYOUT_NAMES, 'all']}")
    frame = records_frame(records)
    sections: list[Section] = []
    for name in names:
        found = layout_sections(name, frame, paper)
        if not found and "all" not in layouts:
            found.append(Section(name, "empty", layout_title(name), pd.DataFrame(),
                                 f"no records for layout {name!r} (tasks {', '.join(layout_tasks(name))})"))
        sections += found
    if diagnostics:
        table = diagnostics_table(records)
        if not table.empty:
            sections.append(Section("diagnostics", "diagnostics", "Diagnostics (model selection, fit times)", table))
    if not sections:
        sections.append(Section("all", "empty", "No records", pd.DataFrame(), "no records to tabulate"))
    return sections


def layout_sections(name: str, frame: pd.DataFrame, paper: pd.DataFrame) -> list[Section]:
    """The non-empty sections of one layout (`LAYOUT_NAMES`) for the long frame of the records: a paper layout's
    joined and stand-in tables followed by the paper's own; Fig. 5's table; one 'other' table per task."""
    found: list[Section] = []
    if name in LAYOUTS:
        layout = LAYOUTS[name]
        joined, stand_in = layout_table(name, frame, paper)
        if not joined.empty:
            found.append(Section(name, "joined", layout.title, joined, layout.note))
        if not stand_in.empty:
            found.append(Section(name, "stand-in", f"{layout.title}: stand-in data sets (ours only, never "
                                                   f"compared with the paper)", stand_in))
        if found:
            found.append(Section(name, "paper", f"{layout.title}: the paper's numbers", paper_reference(name, paper)))
    elif name == "fig5":
        table = layout_fig5(frame, paper)
        if not table.empty:
            found.append(Section(name, "joined", STORE_TITLE, table,
                                 "Paper bytes/sample derived from its GB figures (K×(2+2)+4 bytes)."))
    else:
        found += [Section(name, "other", f"{OTHER_TITLE}: {task}", table)
                  for task, table in layout_other(frame).items() if not table.empty]
    return found
