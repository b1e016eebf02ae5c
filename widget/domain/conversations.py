"""CRM-neutral rules of a conversation: who the client is, who may mark a chat "No reply needed", and
what to create when they are new."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from widget.domain.crm import STAGE_INCOMING, STAGE_OPEN
from widget.domain.ports import DEAL, LEAD
from widget.domain.roles import capabilities
from widget.domain.visibility import OFFERED, ChatFacts, Viewer, can_write

KOMMO = "kommo"
BITRIX24 = "bitrix24"

_NON_DIGITS = re.compile(r"\D+")


def normalize_phone(raw: str | None) -> str | None:
    """A "+" and 7 to 15 digits (E.164 length), or None when the value is not a phone number.

    Messengers hand phones in many shapes ("+7 900 123-45-67", "79001234567"); the CRM search and
    our client identity need one.
    """
    if raw is None:
        return None
    digits = _NON_DIGITS.sub("", raw)
    if not 7 <= len(digits) <= 15:
        return None
    return "+" + digits


def client_key(phone: str | None, chat_type: str, chat_id: str) -> str:
    """One client per phone across channels; without a phone, one per messenger chat."""
    if phone:
        return f"phone:{phone}"
    return f"{chat_type}:{chat_id}"


def taken_message(name: str) -> str:
    return f"This chat was already taken by {name}. Your reply was not sent."


def may_dismiss(viewer: Viewer, chat: ChatFacts) -> bool:
    """Who may press "No reply needed" (product.md §3 and §5; seed text, part 3).

    Whoever may answer a chat may also decide it needs no answer — except on a new client still on
    offer to the first who answers. The product text gives that client to "the first one who
    *sends a reply*" ("el primer vendedor que responda"), and "No reply needed" is, by §5, the
    opposite of a reply. So:

    * dismissing never claims: nobody becomes responsible in the CRM without having written to the
      client, and the offer stays open (the next message from the client is up for grabs again);
    * a sales rep the chat is offered to may not dismiss it: "unanswered" is one fact of the chat,
      so a rep's dismissal would clear the red counter of every colleague it was offered to while
      nobody owns the client — the notification the offer exists for would be gone and the client
      could be lost. A rep who wants the client answers it; one who does not, leaves it;
    * a head (who may write to anyone and sees every chat) may dismiss it — spam, a "thanks" after
      a resolved question — without taking the client: heads supervise, they do not compete.

    Quality control never dismisses anything: it only watches.
    """
    if not can_write(viewer, chat):
        return False
    return chat.assignment != OFFERED or capabilities(viewer.role_on(chat.channel_id)).write_any


# --- what to create for a new client (product.md §2) -------------------------------------------


@dataclass(frozen=True)
class StageInfo:
    crm_stage_id: str
    kind: str  # incoming / open / won / lost
    sort: int
    is_active: bool = True


@dataclass(frozen=True)
class PipelineInfo:
    entity: str  # LEAD (Kommo leads, Bitrix24 lead directory) or DEAL (Bitrix24 categories)
    crm_pipeline_id: str
    is_main: bool
    sort: int
    stages: tuple[StageInfo, ...]
    is_active: bool = True


@dataclass(frozen=True)
class CreationPlan:
    entity: str
    with_contact: bool
    incoming: bool  # Kommo "Incoming leads" stage: create an incoming lead, accepted by whoever answers
    pipeline_id: str | None
    stage_id: str | None
    # Non-empty when the saved pipeline/stage is gone from the CRM and the main pipeline was used.
    fallback_reason: str = ""


def plan_new_client(
    crm: str,
    new_client_entity: str,
    crm_mode: str,
    pipeline_id: str | None,
    stage_id: str | None,
    pipelines: Sequence[PipelineInfo],
) -> CreationPlan:
    if crm == KOMMO:
        entity, with_contact = LEAD, True  # Kommo always pairs a contact with a lead
    elif new_client_entity == LEAD and crm_mode != "simple":
        entity, with_contact = LEAD, False  # a Bitrix24 lead carries name and phone itself
    else:
        # Bitrix24 deal; also when the portal runs in simple CRM mode, which has no leads.
        entity, with_contact = DEAL, True
    reason = ""
    if new_client_entity == LEAD and entity == DEAL:
        reason = "the portal runs in simple CRM mode (no leads); a deal is created instead"

    usable = [p for p in pipelines if p.entity == entity and p.is_active]
    chosen = next((p for p in usable if p.crm_pipeline_id == pipeline_id), None) if pipeline_id else None
    stage = None
    if chosen is not None and stage_id:
        stage = next((s for s in chosen.stages if s.crm_stage_id == stage_id and s.is_active), None)
    if chosen is None or stage is None:
        if pipeline_id or stage_id:
            reason = reason or f"pipeline {pipeline_id} / stage {stage_id} is no longer in the CRM"
        chosen = _main(usable)
        stage = _first_stage(chosen) if chosen is not None else None
    if chosen is None:
        return CreationPlan(entity, with_contact, False, None, None, reason)
    incoming = crm == KOMMO and stage is not None and stage.kind == STAGE_INCOMING
    return CreationPlan(
        entity, with_contact, incoming, chosen.crm_pipeline_id, stage.crm_stage_id if stage else None, reason
    )


def _main(pipelines: Sequence[PipelineInfo]) -> PipelineInfo | None:
    ordered = sorted(pipelines, key=lambda p: (not p.is_main, p.sort, p.crm_pipeline_id))
    return ordered[0] if ordered else None


def _first_stage(pipeline: PipelineInfo) -> StageInfo | None:
    """The first working stage: Kommo's own default for a lead without status_id is the first stage
    after "Incoming leads", so an incoming stage is used only when there is nothing else."""
    active = sorted((s for s in pipeline.stages if s.is_active), key=lambda s: (s.sort, s.crm_stage_id))
    for kind in (STAGE_OPEN, STAGE_INCOMING):
        for s in active:
            if s.kind == kind:
                return s
    return None
