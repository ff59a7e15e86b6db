"""Floor 0 — the contracts every stage shares; imports nothing of this project.

- `contracts.records`: the result-record schema (contract 3), validated at write time.
- `contracts.fileio`: atomic writes and file hashing (one copy each).
- `contracts.provenance`: git commit, machine description, config hash.
- `contracts.runtime`: the process-level CPU setting entry points apply (freed memory kept in the heap).
- `contracts.weights`: backbone weights named by path, official release name, timm hub id or URL → a cached file.
- `contracts.assets`: where set-up puts the offline data and weights (`python -m contracts.assets fetch`).
"""
