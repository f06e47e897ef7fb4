"""One exception family for everything the user can fix.

Library code raises `AblateError` with a message that names the field or flag and the fix; the CLI
prints it as one line on stderr and exits 2. Anything else is a bug and keeps its traceback.
"""


class AblateError(Exception):
    """Bad input or state that the user can fix; the message is the whole story."""


class RecipeError(AblateError):
    """A recipe that does not validate."""


class StudyError(AblateError):
    """A study folder that is missing, stale or inconsistent."""
