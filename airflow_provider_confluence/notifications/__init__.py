"""Notifiers of the Confluence provider (Airflow's folder for notifiers)."""
