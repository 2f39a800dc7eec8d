"""The live training dashboard: a reader of a run directory, never part of training.

    caption-wizard run recipes/demo-shapes.yaml      the runner attaches it to the run it starts
    caption-wizard watch runs/NAME-YYYYmmdd-HHMMSS   attach to a running run, or show a finished one
    caption-wizard watch RUN_DIR --plain             one line per logged step (also when piped)

events.jsonl -> DashboardState.apply(event) -> render(state, width, height, now) -> Rich Live.

  state.py   DashboardState (changed only by apply), ETA / stall arithmetic (events: wizard.rundir.events)
  chart.py   braille loss chart and sparklines (rich renderables)
  render.py  render (pure, clock injected), summary, plain_line
  live.py    attach (follow a run; Ctrl-C menu), show_finished (a run nobody is running)

Only rich and the standard library are imported here (no torch): `watch` starts instantly.

May import: rich, questionary (the Ctrl-C menu), wizard.rundir (the events contract), wizard.plot, wizard.console;
never commands, ask, runner or train/.
"""

from wizard.dashboard.live import attach, backend_running, show_finished
from wizard.dashboard.render import plain_line, plain_summary, render, summary
from wizard.dashboard.state import DashboardState

__all__ = ["DashboardState", "render", "summary", "plain_line", "plain_summary",
           "attach", "backend_running", "show_finished"]
