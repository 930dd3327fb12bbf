"""Sensors of the Confluence provider."""
