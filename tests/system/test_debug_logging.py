"""``dag.test()`` with Airflow's logging at DEBUG: no token the hook minted or rotated shows in its output.

Every token the hook sees goes to ``mask_secret`` (``TokenManager(on_secret=mask_secret)``). In a task, the Task
SDK's ``mask_secret`` registers the value with the task process's masker and sends it to the supervisor as a
``MaskSecret`` message (``airflow/sdk/log.py``; ``airflow/sdk/execution_time/secrets_masker.py`` on 3.0). Under
``dag.test()`` that channel is ``InProcessSupervisorComms`` (``airflow/sdk/execution_time/supervisor.py``), whose
``send()`` first logs ``"Sending request", msg=msg`` at debug level: the whole message, its ``value`` included.
The masker does not look inside that pydantic object, so at DEBUG the line printed
``MaskSecret(value='<the rotated refresh token>')`` in clear (Airflow 3.0.6 to 3.3.2; the forked supervisor's
own ``_handle_request`` omits a ``MaskSecret``'s body). The provider therefore registers a secret locally, without
sending it, when the supervisor is this very process (``_compat.mask_secret``).

Two DAGs: the hook in an operator, and the token macro rendered into an HTTP header. Airflow's own masking of the
connection it hands out (its client secret and extra) goes through the same channel: those lines are Airflow's,
for any connection, and are only checked to be nothing else.

The DAG runs in a subprocess with ``AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG`` (Airflow reads the level when it is
imported), on this session's SQLite database, against the emulator in this process, whose canaries are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_confluence.testing import find_leaks, issued_secrets
from helpers.airflow_env import EXAMPLE_DAGS, airflow_major, airflow_version
from helpers.gateway import put_gateway_connection

pytestmark = [
    pytest.mark.every_line,
    pytest.mark.skipif(airflow_major() < 3, reason="the Task SDK's supervisor channel is Airflow 3's"),
]

# The hook in an operator; the token macro rendered into an HTTP header (it goes to mask_secret before it is
# returned, and Airflow stores the rendered fields).
DAGS = [
    "confluence_list_spaces",
    pytest.param(
        "confluence_http_with_token",
        marks=pytest.mark.xfail(
            airflow_version() < (3, 1),
            strict=True,
            reason="Airflow 3.0's task runner sends the rendered fields unredacted (_serialize_rendered_fields in "
            "airflow/sdk/execution_time/task_runner.py; 3.1 redacts them first) and the in-process channel logs "
            "that SetRenderedFields message: the rendered token shows at DEBUG",
        ),
    ),
]

RUNNER = r"""
import json
import sys

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+

    bag = DagBag(dag_folder=sys.argv[1])
except ImportError:
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
if bag.import_errors:
    raise SystemExit(f"import errors: {sorted(bag.import_errors)}")
run = bag.get_dag(sys.argv[2]).test(run_conf=json.loads(sys.argv[3]))
print("DAG-RUN-STATE", run.state)
"""


def redacted(text: str, secrets: set[str]) -> str:
    """``text`` with every secret replaced by ``<secret>``."""
    for secret in find_leaks(text, secrets):
        text = text.replace(secret, "<secret>")
    return text


def redacted_lines(text: str, secrets: set[str]) -> list[str]:
    """The lines of ``text`` that held a secret, each secret replaced by ``<secret>``."""
    return [redacted(line, secrets)[:400] for line in text.splitlines() if find_leaks(line, secrets)]


@pytest.mark.parametrize("dag_id", DAGS)
def test_dag_test_at_debug_level_prints_no_token(fake_atlassian: Any, confluence_conn: str, dag_id: str) -> None:
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    put_gateway_connection(fake)
    planted = fake.latest_refresh_token
    given = set(issued_secrets())  # the connection's own: its client secret and the refresh token of its grant

    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(EXAMPLE_DAGS), dag_id, json.dumps({"space_id": space["id"]})],
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"},
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    secrets = set(issued_secrets())
    tail = redacted(output[-4000:], secrets)
    states = [line for line in output.splitlines() if line.startswith("DAG-RUN-STATE ")]
    returncode = result.returncode  # (never `result` in an assert: pytest would print its output)
    assert returncode == 0 and states, tail
    assert states[-1].endswith("success"), tail

    # Not vacuous: the hook rotated the grant (a new refresh token and an access token went to mask_secret and
    # were read back from the connection row), and the supervisor channel's debug lines were printed.
    minted = secrets - given
    rotated = fake.latest_refresh_token
    rotated_anew = rotated != planted and rotated in minted
    assert fake.counters["refreshes"] == 1 and rotated_anew and len(minted) >= 2
    assert "Received message from task runner" in output, tail

    # Say where, never what (booleans only: pytest would print the operands of `in`).
    rotated_shown = rotated in output
    where = "\n".join(redacted_lines(output, secrets))
    assert not rotated_shown, f"the rotated refresh token is in the output:\n{where}"
    shown = redacted_lines(output, minted)
    assert not shown, f"{len(shown)} line(s) with a token the hook got from the emulator:\n" + "\n".join(shown)
    # The connection's own secrets show only where Airflow itself masks the connection it hands out
    # (Connection.get_connection_from_secrets / the Task SDK's Connection.get -> mask_secret -> the same channel):
    # Airflow's, for any connection under dag.test() at DEBUG, not the provider's to change.
    elsewhere = [line for line in redacted_lines(output, given) if "MaskSecret(" not in line]
    assert not elsewhere, f"{len(elsewhere)} line(s) with the connection's own secrets:\n" + "\n".join(elsewhere)
