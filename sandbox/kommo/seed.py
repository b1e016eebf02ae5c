"""Deterministic sandbox data: the "Demo Company" account and generated users for any account.

Names are realistic and deliberately include non-ASCII ones, so every screen and every JSON path of
our server meets them from the first click.
"""

from __future__ import annotations

import uuid

from sandbox.kommo.records import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Account,
    Contact,
    CustomField,
    Ids,
    Lead,
    Pipeline,
    Status,
    User,
)

DEMO_SUBDOMAIN = "demo"
DEMO_NAME = "Demo Company"
DEMO_ACCOUNT_ID = 30_000_001
SEED_TIME = 1_735_689_600  # 2025-01-01T00:00:00Z: seeded data never depends on when it was seeded

# (name, email local part, lang, is_admin, is_active)
DEMO_USERS = [
    ("Olivia Bennett", "olivia.bennett", "en", True, True),
    ("José Núñez", "jose.nunez", "es", False, True),
    ("Мария Иванова", "maria.ivanova", "ru", False, True),
    ("João Gonçalves", "joao.goncalves", "pt", False, True),
    ("Zoë Ångström", "zoe.angstrom", "en", False, True),
    ("Liam O'Connor", "liam.oconnor", "en", False, True),
    ("Lucía Fernández", "lucia.fernandez", "es", False, True),
    ("Дмитрий Соколов", "dmitry.sokolov", "ru", False, True),
    ("Ana Beatriz Souza", "ana.souza", "pt", False, True),
    ("Noah Kim", "noah.kim", "en", False, True),
    ("Sofía Ramírez", "sofia.ramirez", "es", False, False),
    ("Carlos Méndez", "carlos.mendez", "es", False, True),
]

FIRST_NAMES = [
    ("Emma", "en"), ("Mateo", "es"), ("Анна", "ru"), ("Gabriel", "pt"), ("Chloé", "en"), ("Diego", "es"),
    ("Игорь", "ru"), ("Beatriz", "pt"), ("Oliver", "en"), ("Valentina", "es"), ("Ольга", "ru"), ("Thiago", "pt"),
]  # fmt: skip
LAST_NAMES = [
    "Walker", "García", "Смирнова", "Oliveira", "Müller", "Peña", "Кузнецов", "Araújo", "Nørgaard", "Castro",
    "Попова", "Sørensen", "Ibáñez", "Lima", "Brennan", "Ruiz",
]  # fmt: skip

DEMO_PIPELINES = [
    ("Sales", ["Initial contact", "Negotiation", "Decision making"]),
    ("Wholesale", ["Request received", "Quote sent", "Contract"]),
    ("Support", ["New ticket", "In progress", "Waiting for client"]),
]
STAGE_COLORS = ["#99ccff", "#ffff99", "#ffcc66", "#deff81", "#87f2c0", "#f9deff"]

# (contact name, phone, pipeline index, stage index, responsible user index, lead name, price)
DEMO_LEADS = [
    ("Ana López", "+34 600 123 456", 0, 0, 1, "Website order #1001", 1200),
    ("Pedro Alves", "+55 11 91234-5678", 1, 1, 3, "Wholesale quote", 18500),
    ("Иван Петров", "+7 912 345-67-89", 2, 0, 2, "Delivery question", 0),
    ("Emily Clark", "+1 555 0100 200", 0, 1, 4, "Annual plan", 4800),
    ("Lucas Martin", "+33 6 12 34 56 78", 0, 2, 5, "Team licence", 9600),
]


def amojo_uuid(kind: str, ident: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kommo-sandbox:{kind}:{ident}"))


def new_account(ids: Ids, subdomain: str, name: str, account_id: int | None, created_at: int) -> Account:
    acct_id = account_id if account_id is not None else ids.next("account")
    acct = Account(
        id=acct_id, subdomain=subdomain, name=name, created_at=created_at, amojo_id=amojo_uuid("account", acct_id)
    )
    acct.contact_fields = {
        "PHONE": CustomField(
            ids.next("field"), "PHONE", "Phone", "multitext",
            {code: ids.next("enum") for code in ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")}, sort=4,
        ),
        "EMAIL": CustomField(
            ids.next("field"), "EMAIL", "Email", "multitext",
            {code: ids.next("enum") for code in ("WORK", "PRIV", "OTHER")}, sort=6,
        ),
        # Kommo's third predefined multitext field (instant messengers); amoCRM's long-standing enums.
        "IM": CustomField(
            ids.next("field"), "IM", "Instant messenger", "multitext",
            {code: ids.next("enum") for code in ("SKYPE", "ICQ", "JABBER", "GTALK", "MSN", "OTHER")}, sort=8,
        ),
    }  # fmt: skip
    return acct


def make_user(ids: Ids, acct: Account, name: str, email: str, lang: str, is_admin: bool, is_active: bool) -> User:
    user_id = ids.next("user")
    return User(
        id=user_id,
        name=name,
        email=email,
        lang=lang,
        is_admin=is_admin,
        is_active=is_active,
        uuid=amojo_uuid("user-uuid", user_id),
        amojo_id=amojo_uuid("user", user_id),
    )


def generated_users(ids: Ids, acct: Account, n: int) -> list[User]:
    """n more users for ``acct``; the account's first user is made its admin."""
    users = []
    start = len(acct.users)
    for k in range(start, start + n):
        first, lang = FIRST_NAMES[k % len(FIRST_NAMES)]
        last = LAST_NAMES[(k // len(FIRST_NAMES) + k) % len(LAST_NAMES)]
        name = f"{first} {last}" if k < len(FIRST_NAMES) * len(LAST_NAMES) else f"{first} {last} {k}"
        users.append(make_user(ids, acct, name, f"user{k + 1}@{acct.host}", lang, k == 0, True))
    return users


def add_pipeline(ids: Ids, acct: Account, name: str, stages: list[str], *, is_main: bool = False) -> Pipeline:
    """A pipeline as Kommo makes one: incoming leads (type 1), the given stages, then 142 and 143."""
    sort = max((p.sort for p in acct.pipelines.values()), default=0) + 1
    pipeline = Pipeline(id=ids.next("pipeline"), name=name, sort=sort, is_main=is_main)
    incoming = Status(ids.next("status"), "Incoming leads", 10, type=1, is_editable=False, color="#c1c1c1")
    pipeline.statuses.append(incoming)
    for i, stage in enumerate(stages):
        color = STAGE_COLORS[i % len(STAGE_COLORS)]
        pipeline.statuses.append(Status(ids.next("status"), stage, 20 + 10 * i, color=color))
    pipeline.statuses.append(Status(WON_STATUS_ID, "Closed - won", 10000, is_editable=False, color="#CCFF66"))
    pipeline.statuses.append(Status(LOST_STATUS_ID, "Closed - lost", 11000, is_editable=False, color="#D5D8DB"))
    acct.pipelines[pipeline.id] = pipeline
    return pipeline


def seed_demo(ids: Ids, acct: Account) -> None:
    for name, local, lang, is_admin, is_active in DEMO_USERS:
        user = make_user(ids, acct, name, f"{local}@{acct.host}", lang, is_admin, is_active)
        acct.users[user.id] = user
    pipelines = [
        add_pipeline(ids, acct, name, stages, is_main=(i == 0)) for i, (name, stages) in enumerate(DEMO_PIPELINES)
    ]
    users = list(acct.users.values())
    phone = acct.contact_fields["PHONE"]
    owner = users[0].id
    for i, (contact_name, number, p_index, s_index, u_index, lead_name, price) in enumerate(DEMO_LEADS):
        responsible = users[u_index].id
        when = SEED_TIME + 3600 * i
        first, _, last = contact_name.partition(" ")
        contact = Contact(
            id=ids.next("contact"), name=contact_name, first_name=first, last_name=last,
            responsible_user_id=responsible, created_by=owner, updated_by=owner, created_at=when, updated_at=when,
            custom_fields=[{
                "field_id": phone.id, "field_name": phone.name, "field_code": "PHONE", "field_type": "multitext",
                "values": [{"value": number, "enum_id": phone.enums["WORK"], "enum_code": "WORK"}],
            }],
        )  # fmt: skip
        acct.contacts[contact.id] = contact
        pipeline = pipelines[p_index]
        regular = [
            s for s in sorted(pipeline.statuses, key=lambda s: s.sort)
            if s.type == 0 and s.id not in (WON_STATUS_ID, LOST_STATUS_ID)
        ]  # fmt: skip
        lead = Lead(
            id=ids.next("lead"), name=lead_name, price=price, responsible_user_id=responsible,
            status_id=regular[s_index].id, pipeline_id=pipeline.id, created_by=owner, updated_by=owner,
            created_at=when, updated_at=when, contact_ids=[contact.id],
        )  # fmt: skip
        acct.leads[lead.id] = lead
