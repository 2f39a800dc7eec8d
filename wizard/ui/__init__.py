"""Terminal drawing shared by the commands, the wizard and the runner (Rich lives here, in console.py,
ask/ and dashboard/). May import the library layers (hub/, data/, units, ...) for their events and
types; library modules hand a ui object in only where a caller gave them a console to show progress on.
"""
