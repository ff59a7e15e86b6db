"""Floor 4 — benchmarks: the speed and storage scripts (`*_speed`, `backbone_profile`, `store_bench`), sharing one
timing harness and flag set (`common`); the papers' numbers (`paper_numbers`); the paper-shaped comparison tables and
plots (`table`, `plots`: they read result records, `contracts.records`, and never re-run anything); the suite runner
(`suite`: a spec's grid of cells through the CLIs, locally or on SLURM, resumable cell by cell) and its benchmark
(`suite_bench`); the resume contract under SIGKILLs (`resume_kills`); the end-to-end demo and ViT proof (`demo`,
`vit_proof`); `run`, every benchmark script in turn. Nothing below imports it."""
