"""The one exception type for bad user input. The CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """Input the user can fix: a bad file, task, field, config key or checkpoint. The message names it."""
