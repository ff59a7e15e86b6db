"""Paper-shaped comparison tables from result records (contract 3): ours beside the papers' numbers.

    python -m benchmarks.table [--records DIR] [--layout tab4 tab5 tab6 dmae ade20k fig5 distill other | all]
                               [--format md|csv|latex] [--diagnostics] [--out FILE]

Reads records only, never re-runs anything. Each layout has the paper's shape: one row per model + pretraining
(+ source and the setting that distinguishes runs: method, detector, resolution), and every paper column becomes
three cells: ours (± the record's 95% interval when it has one), the paper's number and Δ = ours − paper.
Fractions (the records' unit for accuracies, APs and mIoU, `contracts.records.TASKS`) print as percent; no other
conversion, no unit guessing. Only columns that hold at least one of our numbers are shown; the paper's full table
follows each layout in Markdown.

Join rule: a record's `backbone.name` maps to the paper's model (`paper_model_name`: tinyvit-21m → TinyViT-21M,
vit-tiny → ViT-Tiny), its `backbone.pretrain` must equal the paper row's pretraining (in21k-distill, mae, dmae,
...), its data set maps to the paper's key (`paper_dataset_name`), its metric is the paper row's metric (few-shot
also its `n_shot`; Tab. 4 also its resolution). A record on a data set the paper did not measure (Fashion-MNIST,
mini COCO / VOC) is a stand-in: it is listed in the layout's stand-in section, never beside a paper number.
Fig. 5 joins bytes per sample by K alone (a property of the store format, not of the data).
Diagnostics (`best_c`, `fit_s`, `val_top1`, ...) go to their own table with `--diagnostics`. A layout asked for
by name that has no records says so.

Modules, one job each: `frame` (records → one long frame in display units), `layouts` (each paper table's columns
and row keys), `join` (the long frame → wide tables beside the paper's numbers), `build` (the sections of the
requested layouts), `render` (Markdown, CSV, LaTeX), `cli` (the command).
"""
from .build import Section, build_tables
from .cli import main
from .frame import DASH, records_frame
from .join import diagnostics_table, layout_fig5, layout_other, layout_table, paper_reference
from .layouts import LAYOUT_NAMES, LAYOUTS, ROW, Column, Layout
from .render import render

__all__ = ["Section", "build_tables", "main", "DASH", "records_frame", "diagnostics_table", "layout_fig5",
           "layout_other", "layout_table", "paper_reference", "LAYOUT_NAMES", "LAYOUTS", "ROW", "Column", "Layout",
           "render"]
