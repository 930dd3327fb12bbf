"""Confluence pages as Airflow Assets (Datasets on Airflow 2): the ``confluence://`` URI scheme."""
