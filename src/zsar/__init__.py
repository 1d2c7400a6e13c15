"""zsar: zero-shot video action recognition with image-text models."""

__version__ = "0.1.0"
