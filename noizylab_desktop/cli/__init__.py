"""The ``noizylab`` command line: the core commands and one module per feature."""
