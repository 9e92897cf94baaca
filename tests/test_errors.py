"""The reason a one-line error quotes from another error's message."""

from segvit.errors import first_line


def test_first_line_is_the_first_non_blank_line_stripped():
    assert first_line(ValueError("\n  bad header  \nTraceback...")) == "bad header"
    assert first_line("WeightsUnpickler error: x\ny") == "WeightsUnpickler error: x"


def test_without_a_message_the_type_names_the_error():
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("")) == "OSError"
    assert first_line("  \n") == ""
