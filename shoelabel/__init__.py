"""shoelabel: active-learning labeling of shoe photos by brand."""

__version__ = "0.1.0"
