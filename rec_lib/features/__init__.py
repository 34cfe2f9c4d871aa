"""Stage 1: raw exports -> validated, deduplicated Delta feature tables; bad rows quarantined."""
