"""A Variable's row read by its columns and written by an ``UPDATE``, never loaded as Airflow's ``Variable`` object.

Airflow's ``Variable`` model registers its value with the secrets masker each time the ORM loads one whose key has a
sensitive name (``Variable.on_db_load`` calls ``mask_secret``), and the masker keeps every value for the life of the
process. The rotation journal and the token state change on every rotation and their names are sensitive on
purpose (the UI, the CLI and task logs hide them), so in the long-lived API server every rotation would leave one
more value in the masker for good. Read here by their columns, they are decrypted, and written encrypted, with the
deployment's Fernet key by a transient ``Variable`` (Airflow's own ``get_val``/``set_val``), and nothing is
registered. (A row created with ``session.add(Variable(...))`` is not loaded, so it registers nothing either.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["VariableRow", "delete_row", "read_row", "write_value"]


@dataclass(frozen=True)
class VariableRow:
    """A Variable's row: its id, key and decrypted value (None when it cannot be decrypted)."""

    id: int
    key: str
    value: str | None = field(repr=False)


def _model() -> Any:
    from airflow.models.variable import Variable

    return Variable


def read_row(session: Session, key: str, *, for_update: bool = False) -> VariableRow | None:
    """The row of Variable ``key`` (locked with ``SELECT ... FOR UPDATE`` when ``for_update``), or None."""
    variable = _model()
    query = session.query(variable.id, variable._val, variable.is_encrypted).filter(variable.key == key)
    found = (query.with_for_update() if for_update else query).one_or_none()
    if found is None:
        return None
    row_id, raw, encrypted = found
    sealed = variable(key=key)  # transient: never added to the session
    sealed._val, sealed.is_encrypted = raw, bool(encrypted)
    return VariableRow(id=int(row_id), key=key, value=sealed.get_val())


def write_value(session: Session, row: VariableRow, value: str) -> None:
    """Store ``value`` in ``row``, encrypted as ``Variable.set_val`` does, in the caller's transaction."""
    variable = _model()
    sealed = variable(key=row.key, val=value)  # transient: encrypts with the deployment's Fernet key
    session.query(variable).filter(variable.id == row.id).update(
        {variable._val: sealed._val, variable.is_encrypted: sealed.is_encrypted}, synchronize_session=False
    )


def delete_row(session: Session, row: VariableRow) -> None:
    """Delete ``row`` in the caller's transaction."""
    variable = _model()
    session.query(variable).filter(variable.id == row.id).delete(synchronize_session=False)
