"""Floor 0 — the contracts every stage shares; imports nothing of this project.

- `contracts.checkpoint`: the checkpoint file a student run leaves (contract 2): its format and atomic writer.
- `contracts.records`: the result-record schema (contract 3), validated at write time.
- `contracts.fileio`: atomic writes and file hashing (one copy each), the temp-file policy.
- `contracts.resume`: the resume contract: a run's identity, compared field by field on resume.
- `contracts.provenance`: git commit, machine description, config hash.
- `contracts.runtime`: the process-level CPU setting entry points apply (freed memory kept in the heap).
- `contracts.weights`: backbone weights named by path, official release name, timm hub id or URL → a cached file.
- `contracts.assets`: where set-up puts the offline data and weights (`python -m contracts.assets fetch`).
"""
