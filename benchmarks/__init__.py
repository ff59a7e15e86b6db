"""Floor 4 — benchmarks: the speed and storage scripts (`*_speed`, `backbone_profile`, `store_bench`), sharing one
timing harness and flag set (`common`); the papers' numbers (`paper_numbers`); the paper-shaped comparison tables and
plots (`table`, `plots`: they read result records, `contracts.records`, and never re-run anything); the end-to-end
demo and ViT proof (`demo`, `vit_proof`); `run`, every benchmark script in turn. Nothing below imports it."""
