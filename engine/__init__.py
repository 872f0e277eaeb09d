"""turbo-tui's engine: Wan models, checkpoint loading, the rCM sampler and the resident pipeline.

Importing this package is cheap (no torch); the UI uses :mod:`engine.api` only.
"""
