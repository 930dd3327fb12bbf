"""The token broker's worker side (:mod:`.client`) and its signed wire protocol (:mod:`.protocol`).

The server side is a route of the provider's plugin (:mod:`airflow_provider_confluence.plugins.broker`).
"""
