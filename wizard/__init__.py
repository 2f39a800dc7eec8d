"""caption-wizard: fine-tune your own image-captioning model from a guided terminal menu."""

__version__ = "0.1.0"
