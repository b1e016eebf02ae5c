"""CRM-neutral views of what a CRM tells us about its users and pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field

# Stage kinds, CRM-neutral: what a stage means for a new client and for "is this deal closed".
STAGE_INCOMING = "incoming"  # Kommo "Incoming leads" (unsorted), type 1
STAGE_OPEN = "open"
STAGE_WON = "won"  # Kommo 142, Bitrix24 semantics S
STAGE_LOST = "lost"  # Kommo 143, Bitrix24 semantics F

# Pipeline entity kinds.
ENTITY_LEAD = "lead"  # Kommo lead (a deal in Kommo's words) or Bitrix24 lead (STATUS directory)
ENTITY_DEAL = "deal"  # Bitrix24 deal category


@dataclass(frozen=True)
class CrmUser:
    crm_user_id: str
    name: str
    email: str = ""
    is_active: bool = True
    is_admin: bool = False
    lang: str = ""


@dataclass(frozen=True)
class CrmStage:
    crm_stage_id: str
    name: str
    sort: int
    kind: str  # STAGE_* above


@dataclass(frozen=True)
class CrmPipeline:
    entity: str  # ENTITY_LEAD (Kommo lead / Bitrix24 lead directory) or ENTITY_DEAL (Bitrix24 category)
    crm_pipeline_id: str
    name: str
    sort: int
    is_main: bool
    stages: tuple[CrmStage, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CrmSnapshot:
    users: tuple[CrmUser, ...]
    pipelines: tuple[CrmPipeline, ...]
    crm_mode: str | None = None  # Bitrix24: "classic" / "simple"


@dataclass
class SyncReport:
    """What a "Refresh CRM data" changed, for the person who pressed the button."""

    added: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    pipelines_added: list[str] = field(default_factory=list)
    pipelines_removed: list[str] = field(default_factory=list)
    requests: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "deactivated": self.deactivated,
            "reactivated": self.reactivated,
            "renamed": self.renamed,
            "pipelines_added": self.pipelines_added,
            "pipelines_removed": self.pipelines_removed,
            "requests": self.requests,
        }
