"""Operator extra links of the Confluence provider."""
