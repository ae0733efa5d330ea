"""The directory's tables (on the shared `gateway.database.Base`).

Every lookup the `Directory` protocol makes is a primary-key or indexed-column
equality, so each is O(log n) in a B-tree whatever the size of the world:

- persons, customers, contracts, lines, invoices, vpns: by primary key;
- customer relations: primary key (person_id, relation, customer_number), so
  "relations of a person" is a prefix scan; index on customer_number;
- contracts by customer, lines by customer / contract / user, invoices by
  contract, vpns by customer: one index each.

Proofs are stored only as hashes (argon2id, see `gateway.directory.proofs`).
Table names carry a ``dir_`` prefix so that the account tables in the same
database cannot collide with them. The schema itself is created by the Alembic
revisions ``0001_directory`` and ``0002_directory_revision`` (the revision counter and
the triggers that bump it); keep both in step.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.database import Base

__all__ = [
    "ContractRow",
    "CustomerRelationRow",
    "CustomerRow",
    "DirectoryRevisionRow",
    "InvoiceRow",
    "LineRow",
    "PersonRow",
    "VpnRow",
]

CUSTOMER_KINDS = ("private", "business", "business_member", "split_private", "framework")
CONTRACT_KINDS = ("private", "business", "business_member", "invoice_split", "company")
PARTS = ("private", "business")
#: Relation of a person to a customer; lines a person uses are `LineRow.user_person_id`.
RELATIONS = ("holder", "authorised", "member", "split_private", "admin")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PersonRow(Base):
    __tablename__ = "dir_persons"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class CustomerRow(Base):
    __tablename__ = "dir_customers"
    __table_args__ = (CheckConstraint(_in("kind", CUSTOMER_KINDS), name="kind"),)

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    #: argon2id hash of the Kundenkennwort; None = no Kundenkennwort set.
    kundenkennwort_hash: Mapped[str | None] = mapped_column(String(255), default=None)


class CustomerRelationRow(Base):
    __tablename__ = "dir_customer_relations"
    __table_args__ = (CheckConstraint(_in("relation", RELATIONS), name="relation"),)

    person_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("dir_persons.id", ondelete="CASCADE"), primary_key=True
    )
    relation: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_number: Mapped[str] = mapped_column(
        String(32), ForeignKey("dir_customers.number", ondelete="CASCADE"), primary_key=True, index=True
    )


class ContractRow(Base):
    __tablename__ = "dir_contracts"
    __table_args__ = (CheckConstraint(_in("kind", CONTRACT_KINDS), name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_number: Mapped[str] = mapped_column(
        String(32), ForeignKey("dir_customers.number", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    framework_customer: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("dir_customers.number", ondelete="SET NULL"), default=None
    )


class LineRow(Base):
    __tablename__ = "dir_lines"
    __table_args__ = (CheckConstraint("part IS NULL OR " + _in("part", PARTS), name="part"),)

    msisdn: Mapped[str] = mapped_column(String(20), primary_key=True)
    contract_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("dir_contracts.id", ondelete="CASCADE"), index=True
    )
    customer_number: Mapped[str] = mapped_column(
        String(32), ForeignKey("dir_customers.number", ondelete="CASCADE"), index=True
    )
    part: Mapped[str | None] = mapped_column(String(16), default=None)
    user_person_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("dir_persons.id", ondelete="SET NULL"), index=True, default=None
    )
    #: argon2id hash of the SIM's PUK (cheap parameters, see proofs.py); None = unknown.
    puk_hash: Mapped[str | None] = mapped_column(String(255), default=None)


class InvoiceRow(Base):
    __tablename__ = "dir_invoices"
    __table_args__ = (CheckConstraint("part IS NULL OR " + _in("part", PARTS), name="part"),)

    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    contract_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("dir_contracts.id", ondelete="CASCADE"), index=True
    )
    customer_number: Mapped[str] = mapped_column(
        String(32), ForeignKey("dir_customers.number", ondelete="CASCADE"), index=True
    )
    part: Mapped[str | None] = mapped_column(String(16), default=None)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    current: Mapped[bool] = mapped_column(Boolean, default=False)


class VpnRow(Base):
    __tablename__ = "dir_vpns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_number: Mapped[str] = mapped_column(
        String(32), ForeignKey("dir_customers.number", ondelete="CASCADE"), index=True
    )


class DirectoryRevisionRow(Base):
    """One row: the directory's revision, bumped by triggers on every ``dir_*`` table."""

    __tablename__ = "dir_revision"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
