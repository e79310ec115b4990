"""The one exception type tfft raises for problems the user can fix."""


class TfftError(ValueError):
    """A user-facing error: bad input, config or checkpoint.

    The message is a single line that names the offending input (file and line,
    config key or checkpoint) and says what to do. Entry points print it without a
    traceback and exit non-zero.
    """


def located(source: str, line: int | None) -> str:
    """Formats an input location as ``file:line`` (or just ``file``)."""
    return f"{source}:{line}" if line else source


def reason(error: BaseException) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
