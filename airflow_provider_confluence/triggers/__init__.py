"""Triggers of the Confluence provider (run by the triggerer for deferrable sensors)."""
