"""Stage 4: every user against the candidate items -> top-K recommendations (exact kernel + Spark job)."""
