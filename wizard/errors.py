"""Errors a user can fix. The CLI prints them without a traceback and exits 2."""


class UserError(Exception):
    """Bad input: a recipe, an argument, a data file. Printed as-is, exit status 2.

    `hint` is an optional second line telling the user what to do.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class RunFailed(Exception):
    """The training backend (or another long job) failed: exit status 1."""

    exit_code = 1
