"""The command-line commands: one module per command; each calls library code and prints. May import everything below it; nothing imports commands except cli.py."""
