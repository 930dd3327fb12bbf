"""Getting access tokens: Atlassian's OAuth endpoints, the rotation protocol, and where token state is kept.

* :mod:`~airflow_provider_confluence.auth.oauth`: the HTTP calls to Atlassian's authorization server.
* :mod:`~airflow_provider_confluence.auth.tokens`: the rotation protocol; **a refresh happens here**
  (:meth:`~airflow_provider_confluence.auth.tokens.TokenManager.get_access_token`).
* :mod:`~airflow_provider_confluence.auth.manager`: a connection's settings wired to the protocol.
* :mod:`~airflow_provider_confluence.auth.stores`: where the rotated refresh token lives, and its lock.
* :mod:`~airflow_provider_confluence.auth.broker`: how an Airflow 3 task asks the API server for a token.
* :mod:`~airflow_provider_confluence.auth.consent_state`: the consent flow's signed state and its result.
* :mod:`~airflow_provider_confluence.auth.status`: each grant's status, for the CLI and the status page.
"""
