"""The run-wide secret-leak audit (conftest.py) can find a leak: otherwise its clean bill means nothing."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_confluence.testing import find_leaks, issued_secrets
from helpers.leak_audit import _AUDITED, audit_for_leaks

pytestmark = [pytest.mark.every_line, pytest.mark.airflow2]


def test_find_leaks_spots_a_canary_in_text_even_when_glued_to_other_characters(fake_atlassian):
    secret = fake_atlassian.client_secret
    assert secret in issued_secrets()
    assert find_leaks(f"Authorization: Bearer {secret}") == [secret]
    assert find_leaks(f"xx{secret}yy") == [secret]
    assert find_leaks("nothing to see, just a long_identifier_that_is_not_a_secret_at_all") == []


def test_the_audit_reports_where_a_canary_was_printed(fake_atlassian):
    token = fake_atlassian.issue_grant()
    _AUDITED.append(("synthetic::leak", f"log line with {token}"))
    try:
        leaks = audit_for_leaks()
        assert leaks == ["synthetic::leak: 1 emulator-issued secret(s)"]
        assert token not in leaks[0]
    finally:
        _AUDITED.remove(("synthetic::leak", f"log line with {token}"))


def test_captured_logs_are_audited(fake_atlassian, caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("audit-probe").info("a harmless line")
    assert "a harmless line" in caplog.text


def test_xcom_values_and_rendered_fields_of_dag_runs_are_audited(fake_atlassian, confluence_conn):
    """The audit reads what DAG runs stored: after a run, its XCom (the spaces) is among the scanned texts."""
    from helpers.dags import dagbag
    from helpers.leak_audit import _stored_task_outputs

    fake_atlassian.add_space("AUDITKEY")
    run = dagbag().get_dag("confluence_list_spaces").test()
    assert str(run.state).endswith("success")
    stored = _stored_task_outputs()
    assert any(where == "xcom.value" and "AUDITKEY" in text for where, text in stored)
    assert any(where == "rendered_task_instance_fields.rendered_fields" for where, _text in stored)
    assert find_leaks("\n".join(text for _where, text in stored)) == []
