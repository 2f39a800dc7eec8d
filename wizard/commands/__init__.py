"""The command-line commands: one module per command; each parses nothing (cli.py does), calls library
code, prints. May import everything below it; nothing imports commands except cli.py."""
