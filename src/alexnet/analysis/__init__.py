"""Looking inside networks: per-layer summaries, features, pictures."""
