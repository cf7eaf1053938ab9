# Small artifacts keras-chem trains itself; one line per file in MANIFEST.jsonl (sha256, how it was made).
