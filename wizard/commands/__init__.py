"""The command-line commands: one module per command; each calls library code and prints.

wizard/cli.py parses the arguments and calls `cmd_<name>(args)` here through its lazy table
(start-up stays instant: each module imports what its command needs, when it runs).

May import everything below it: ask/ and dashboard/ (the front end), runner and launch, the
torch-free planning modules, rundir/. Nothing imports commands except cli.py (and commands
among themselves). Library modules return values or raise; the printing happens here.
"""
