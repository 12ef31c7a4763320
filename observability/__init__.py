"""Metrics and log context shared by every layer (imports nothing of ours)."""
