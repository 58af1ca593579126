"""``flowbus consume`` options that are checked before any broker is contacted."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flowbus.cli import main
from flowbus.consumer.cli import _exception_type, consume
from flowbus.errors import ConfigurationError


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--infrastructure-error", "no_such_module.Error", "cannot import exception type"),
        ("--data-error", "json.dumps", "is not an exception type"),
        ("--infrastructure-error", "NoSuchError", "cannot import exception type"),
    ],
)
def test_a_bad_exception_class_exits_2_naming_it(option, value, words):
    result = CliRunner().invoke(main, ["consume", "--topic", "t", "--group", "g", option, value])
    assert result.exit_code == 2
    assert words in result.output and value in result.output


def test_exception_classes_are_found_by_dotted_name():
    assert _exception_type("json.JSONDecodeError").__name__ == "JSONDecodeError"
    assert _exception_type("TimeoutError") is TimeoutError
    with pytest.raises(ConfigurationError):
        _exception_type("builtins.len")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--concurrency", "0"), ("--receiver-timeout", "-1"), ("--commit-interval", "0")],
)
def test_out_of_range_numbers_are_usage_errors(option, value):
    result = CliRunner().invoke(consume, ["--topic", "t", "--group", "g", option, value])
    assert result.exit_code == 2 and option in result.output
