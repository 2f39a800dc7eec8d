"""caption-wizard: fine-tune your own image-captioning model from a guided terminal menu.

The layers (docs/architecture.md): cli -> commands -> ask, dashboard -> runner, launch -> planning
(recipe, catalog, model, estimate, data, hub, export, metrics, ...) -> rundir; train/ runs inside each
training process and imports planning and rundir only. Each package's docstring says what it may import.
This package may import only wizard.quiet at import time (start-up stays instant)."""

__version__ = "0.1.0"

from wizard import quiet as _quiet  # noqa: E402  (third-party noise filtered before anything imports it)

_quiet.install()
