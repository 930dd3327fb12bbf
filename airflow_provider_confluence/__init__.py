"""Confluence Cloud for Apache Airflow, over Atlassian OAuth 2.0 (3LO), with rotated refresh tokens kept safe.

Importing this package is cheap and imports nothing from Airflow; the hook, the operators and the emulator
live in their own modules.
"""

from __future__ import annotations

__version__ = "0.2.0"

from airflow_provider_confluence._moved import install as _install_moved_modules

_install_moved_modules()
