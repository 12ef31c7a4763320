"""The Mastodon client API: a thin adapter over photostream's commands and read models,
so Mastodon apps and libraries (Mastodon.py, Tusky, Ivory, Elk, ...) work unchanged.
See docs/ARCHITECTURE.md ("Mastodon client API") for what maps to what."""
