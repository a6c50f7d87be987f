"""The one error every ``dvd`` command raises for bad input from the command line.

It lives apart from the commands so that no command imports another to raise it.
"""


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""
