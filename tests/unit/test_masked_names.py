"""Names Airflow masks, and names it does not: checked with Airflow's own secrets masker.

Airflow hides the value of a connection extra or a Variable whose name contains a sensitive word (``token``,
``secret``, ``password``, ...; matched as a substring). So every extra that holds no secret must carry none of those
words (or the connection form shows ``***`` for it), and every Variable that holds token state must carry one.
"""

from __future__ import annotations

import pytest

from airflow_provider_confluence.auth.broker.protocol import GATE_VARIABLE
from airflow_provider_confluence.auth.stores.journal import journal_key
from airflow_provider_confluence.auth.stores.support import legacy_variable_key, variable_key
from airflow_provider_confluence.config.connection import RENAMED_EXTRAS
from airflow_provider_confluence.get_provider_info import CONNECTION_EXTRAS

pytestmark = pytest.mark.airflow2


def hidden(name: str) -> bool:
    try:
        from airflow._shared.secrets_masker import should_hide_value_for_key
    except ImportError:  # Airflow 2
        from airflow.utils.log.secrets_masker import should_hide_value_for_key
    return bool(should_hide_value_for_key(name))


@pytest.mark.parametrize("extra", [e for e in CONNECTION_EXTRAS if not e[4]], ids=lambda e: e[0])
def test_no_extra_without_a_secret_is_masked(extra):
    assert hidden(extra[0]) is False


@pytest.mark.parametrize("extra", [e for e in CONNECTION_EXTRAS if e[4]], ids=lambda e: e[0])
def test_every_secret_extra_is_masked(extra):
    assert hidden(extra[0]) is True


def test_the_renamed_extras_were_masked_and_are_not_any_more():
    assert all(hidden(old) for old in RENAMED_EXTRAS)
    assert not any(hidden(new) for new in RENAMED_EXTRAS.values())


@pytest.mark.parametrize("key", [variable_key("c1"), journal_key("c1"), GATE_VARIABLE])
def test_every_variable_holding_token_state_or_a_key_is_masked(key):
    assert hidden(key) is True


def test_the_variable_name_before_0_2_0_was_not_masked():
    assert hidden(legacy_variable_key("c1")) is False
