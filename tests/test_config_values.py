"""Config values as people type them on a command line (fast tier: no workflow run)."""

import pytest

from zsar.pipeline.config import ConfigError, command_line_values, validate_config


def validated(**values):
    return validate_config(dict(values), complete=False)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("true", True), ("True", True), ("yes", True), ("on", True),
     ("false", False), ("FALSE", False), ("no", False), ("off", False)],
)
def test_a_boolean_key_takes_the_spellings_people_type(typed, meant):
    # Snakemake hands `--config allow_demo_models=true` over as the string 'true'.
    assert validated(allow_demo_models=typed)["allow_demo_models"] is meant


def test_yaml_read_values_stay_booleans():
    values = command_line_values(["allow_demo_models=no"])
    assert validated(**values)["allow_demo_models"] is False


def test_a_word_that_is_no_boolean_is_refused_with_the_spelling_that_works():
    with pytest.raises(ConfigError) as caught:
        validated(allow_demo_models="maybe")
    assert str(caught.value) == (
        "config: allow_demo_models: 'maybe' is not a boolean: write true or false (or yes, no)"
    )


def test_a_string_key_is_not_turned_into_a_boolean():
    # Only keys the schema types as boolean change: a data root named "yes" stays a path.
    assert validated(data_root="yes")["data_root"] == "yes"
