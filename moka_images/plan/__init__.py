"""Pure planning: build graph and decisions, promotion edges, gate verdicts. No I/O here."""
