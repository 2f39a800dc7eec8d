"""caption-wizard: fine-tune your own image-captioning model from a guided terminal menu."""

__version__ = "0.1.0"

from wizard import quiet as _quiet  # noqa: E402  (third-party noise filtered before anything imports it)

_quiet.install()
