"""Token stores: the connection's row, a Variable, or memory, each with the lock that guards its state.

* :mod:`~airflow_provider_confluence.auth.stores.choice`: which store this process uses.
* :mod:`~airflow_provider_confluence.auth.stores.connection`: the connection's extra, locked by its row.
* :mod:`~airflow_provider_confluence.auth.stores.variable`: the Variable stores.
* :mod:`~airflow_provider_confluence.auth.stores.journal`: the guard against stale copies written back.
* :mod:`~airflow_provider_confluence.auth.stores.support`: fingerprints, host lock, private DB sessions.
"""
