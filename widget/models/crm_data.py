"""CRM data mirrored locally by "Refresh CRM data": employees, pipelines, stages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.domain.crm import ENTITY_LEAD, STAGE_OPEN
from widget.models._base import UTCDateTime, utcnow


class Employee(Base):
    """A CRM user. Users that vanish from the CRM are kept, marked inactive, with their roles."""

    __tablename__ = "employees"
    __table_args__ = (
        UniqueConstraint("account_id", "crm_user_id", name="uq_employees_account_crm_user"),
        Index("ix_employees_account_active", "account_id", "is_active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    crm_user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    lang: Mapped[str] = mapped_column(String(8), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # False when the user was not in the CRM's answer at the last refresh.
    in_crm: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Signed into the employee's page sessions; raised when their admin right or activity changes,
    # which ends every session issued before.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (
        UniqueConstraint("account_id", "entity", "crm_pipeline_id", name="uq_pipelines_account_entity_crm"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(16), default=ENTITY_LEAD)
    crm_pipeline_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)
    is_main: Mapped[bool] = mapped_column(Boolean, default=False)
    # False once the pipeline disappeared from the CRM (kept so saved settings can be flagged).
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("pipeline_id", "crm_stage_id", name="uq_stages_pipeline_crm"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    crm_stage_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default=STAGE_OPEN)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
