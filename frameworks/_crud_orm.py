"""The SQLAlchemy variant of the items store, shared by the Flask and FastAPI CRUD apps.

SQLAlchemy 2 in its plain form (declarative mapping, a ``Session`` per call); the published
benchmark used Flask-SQLAlchemy and SQLModel, both thin layers over this same core.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from _crud import BUSY_TIMEOUT_S


class Base(DeclarativeBase):
    """The declarative base of the one model."""


class Item(Base):
    """A row of ``items``."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    price: Mapped[float] = mapped_column(Float)

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data."""
        return {"id": self.id, "name": self.name, "description": self.description, "price": self.price}


class OrmItemStore:
    """The same five operations as ``_crud.ItemStore``, through the ORM."""

    def __init__(self, path: str) -> None:
        # The engine's pool keeps connections across requests, as a deployed app's would.
        self.engine = create_engine(f"sqlite:///{path}",
                                    connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    def list(self) -> list[dict[str, Any]]:
        """Every item, by id."""
        with Session(self.engine) as session:
            return [item.to_dict() for item in session.scalars(select(Item).order_by(Item.id))]

    def get(self, item_id: int) -> dict[str, Any] | None:
        """One item, or ``None``."""
        with Session(self.engine) as session:
            item = session.get(Item, item_id)
            return item.to_dict() if item else None

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        """Insert an item and return it with its id."""
        with Session(self.engine) as session:
            item = Item(name=data["name"], description=data.get("description", ""), price=data["price"])
            session.add(item)
            session.commit()
            return item.to_dict()

    def update(self, item_id: int, data: dict[str, Any]) -> dict[str, Any] | None:
        """Replace an item's fields; ``None`` when there is no such item."""
        with Session(self.engine) as session:
            item = session.get(Item, item_id)
            if item is None:
                return None
            item.name, item.description, item.price = data["name"], data.get("description", ""), data["price"]
            session.commit()
            return item.to_dict()

    def delete(self, item_id: int) -> bool:
        """Delete an item; whether it existed."""
        with Session(self.engine) as session:
            item = session.get(Item, item_id)
            if item is None:
                return False
            session.delete(item)
            session.commit()
            return True
