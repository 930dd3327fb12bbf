"""What the token broker gives Airflow's secrets maskers in the API server: none of the tokens it rotates.

Airflow's ``SecretsMasker`` keeps each value it is given for the life of the process and, on every new one,
recompiles one regex of all of them (``add_mask``); nothing removes a value but ``reset_masker()``, which drops
Airflow's own secrets too. Registered there, the two tokens of every rotation of every connection would pile up in the
API server for as long as it runs (``bench/masker_growth.py`` prints what that costs), and would protect nothing:
Airflow masks task and triggerer logs, not the API server's records
(https://airflow.apache.org/docs/apache-airflow/stable/security/secrets/mask-sensitive-values.html), where its
masker only redacts the HTTP access log's query values and the API's own models.

Airflow itself would register them too, and the broker avoids that: its connection lookup goes through the secrets
backends without building the URI for Airflow's secret cache (``get_uri`` reads ``extra_dejson``, which registers
every sensitive extra; :func:`~airflow_provider_confluence.version_compat.get_connection_in_server`), and the
Variables that change at each rotation (the journal, the Variable row store) are read by their columns
(:mod:`airflow_provider_confluence.auth.stores.variable_rows`). What is left is one value per connection: its
client secret (and Airflow's own constants).

Tokens stay out of the API server's output by construction instead: no log line of the broker formats one; an error
text from Atlassian has every value the request sent cut out (:mod:`airflow_provider_confluence.auth.oauth`); a
database error is logged by its driver's first line, without SQLAlchemy's parameters (:mod:`.broker_load`); a
broker request carries nothing in its URL.
"""

from __future__ import annotations

__all__ = ["not_registered"]


def not_registered(secret: str) -> None:
    """The broker's ``on_secret`` (``TokenManager``): a token it rotates is not registered with Airflow's maskers."""
