"""What the synthetic org is made of: entity types, their paths, names, texts, custom attributes.

Plain constants (and the suffix rule for custom attribute names), shared by generation, mutations,
JSON:API rendering and search.
"""

from __future__ import annotations

ENTITY_TYPES: tuple[str, ...] = (
    "conversation",
    "message",
    "customer",
    "user",
    "team",
    "note",
    "tag",
    "brand",
    "satisfaction",
    "satisfaction_response",
    "kobject",
    "klass",
    "company",
)
METADATA_RESOURCES: tuple[str, ...] = ("conversation", "customer", "message", "company")
# Types whose `customer` relationship a customer merge re-points.
CUSTOMER_LINKED_TYPES: tuple[str, ...] = (
    "conversation",
    "message",
    "note",
    "kobject",
    "satisfaction_response",
)

# Where each type's record lives; used for `links.self` and relationship links.
SELF_PATHS: dict[str, str] = {
    "conversation": "/v1/conversations/{id}",
    "message": "/v1/messages/{id}",
    "customer": "/v1/customers/{id}",
    "user": "/v1/users/{id}",
    "team": "/v1/teams/{id}",
    "note": "/v1/notes/{id}",
    "tag": "/v1/tags/{id}",
    "brand": "/v1/brands/{id}",
    "satisfaction": "/v1/satisfaction/{id}",
    "satisfaction_response": "/v1/satisfaction-responses/{id}",
    "kobject": "/v1/kobjects/{id}",
    "klass": "/v1/klasses/{id}",
    "company": "/v1/companies/{id}",
}

CUSTOM_SUFFIXES: tuple[str, ...] = ("Str", "Num", "Bool", "At", "Tree", "Txt", "Url", "Id")
LATE_CUSTOM_ATTRIBUTE = "refundReasonStr"  # conversation custom attr only on later-half updates
BULK_TIE_SIZE = 320


FIRST_NAMES = (
    "Zoë", "José", "Łukasz", "Aiko", "Søren", "Mía", "Björn", "Chloé", "Ngozi", "Fatima",
    "Олег", "Priya", "Liam", "Noah", "Emma", "Ava", "Mateo", "Yuki", "Chidi", "Ingrid",
    "Renée", "Dmitri", "Sofía", "Hannah", "Kwame", "Ana", "Thomas", "Mei", "Omar", "Elif",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "García", "O'Brien", "Nakamura", "Østergaard", "Kowalski", "Núñez", "Smith",
    "Dubois", "Ivanova", "Wang", "Okafor", "Johansson", "Rossi", "Yılmaz", "Kim", "Silva",  # noqa: RUF001
    "Patel", "Cohen", "Novák", "Schmidt", "Lefèvre", "Tanaka", "Brown", "Ahmed",
)  # fmt: skip
SENTENCES = (
    "Hi, I ordered a pair of shoes last week and they still haven't arrived.",
    "Hola, ¿dónde está mi pedido? Lo necesito antes del viernes.",
    "Merci beaucoup pour votre aide rapide 🙏",
    "注文番号を確認してください。",
    "Ich möchte mein Abo kündigen, bitte bestätigen Sie das.",
    "The tracking link says \"delivered\" but nothing is at my door.",
    "Can you refund the second charge? I was billed twice 💳💳",
    "Thanks for reaching out! I've looked into your order and issued a replacement.",
    "I'm sorry for the trouble — a refund of €42.50 is on its way.",
    "Could you send me a photo of the damaged item?",
    "Your return label is attached. Drop it at any post office within 14 days.",
    "Привет! Не могу войти в аккаунт после сброса пароля.",  # noqa: RUF001
    "¡Excelente servicio, gracias!",
    "Order #A-10293 arrived broken; the glass was shattered.",
    "Please update my shipping address to 221B Baker Street, London NW1 6XE.",
    "We've escalated this to our logistics team and will update you within 24h.",
    "Is there a discount for annual plans? 🤔",
    "Line one\nLine two after a newline, with a tab\there.",
    "Emoji test: 😀🚀🔥 and a flag 🇯🇵.",
    "I never received the confirmation e-mail; spam folder is empty too.",
)  # fmt: skip
NOTE_BODIES = (
    "Customer is VIP, handle with care.",
    "Escalated to tier 2 — see Jira SUP-4411.",
    "Refund approved by @lead, processed in Stripe.",
    "Called the customer; no answer. Left voicemail.",
    "Duplicate of a previous conversation; merged notes here.",
    "Kunde spricht Deutsch, bitte auf Deutsch antworten.",
    "Address verified ✅",
)  # fmt: skip
TAG_NAMES = (
    "billing", "refund", "shipping", "damaged", "returns", "account", "login", "vip",
    "feedback", "bug", "feature-request", "cancellation", "discount", "warranty", "exchange",
    "urgent", "spam", "duplicate", "escalated", "social", "chargeback", "subscription",
    "größe", "commande", "promo", "b2b", "wholesale", "press", "legal", "other",
)  # fmt: skip
CHANNELS = ("email", "chat", "sms", "voice", "facebook", "instagram")
CHANNEL_WEIGHTS = (50, 25, 8, 7, 5, 5)
CONTACT_REASONS = (
    "billing.refund.partial", "billing.refund.full", "billing.invoice", "shipping.delay",
    "shipping.lost", "product.damaged", "product.question", "account.login", "account.close",
)  # fmt: skip
REFUND_REASONS = ("damaged", "late delivery", "wrong size", "changed mind", "défectueux", "その他")
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "ja_JP", "ru_RU", None)
TIME_ZONES = ("America/New_York", "Europe/Berlin", "Europe/Paris", "Asia/Tokyo", "UTC", None)
TIERS = ("bronze", "silver", "gold", "platinum", "🌟 legend")

CUSTOM_DEFS: dict[str, tuple[tuple[str, str], ...]] = {
    # name -> display name; the suffix carries the type.
    "conversation": (
        ("orderIdStr", "Order ID"),
        ("refundAmountNum", "Refund amount"),
        ("vipBool", "VIP"),
        ("purchasedAt", "Purchased at"),
        ("contactReasonTree", "Contact reason"),
        ("agentSummaryTxt", "Agent summary"),
        ("trackingUrl", "Tracking link"),
        ("ticketId", "External ticket"),
        (LATE_CUSTOM_ATTRIBUTE, "Refund reason"),
    ),
    "customer": (
        ("loyaltyTierStr", "Loyalty tier"),
        ("lifetimeValueNum", "Lifetime value"),
        ("newsletterBool", "Newsletter"),
        ("lastOrderAt", "Last order"),
        ("segmentTree", "Segment"),
        ("bioTxt", "Bio"),
        ("profileUrl", "Profile"),
        ("crmId", "CRM id"),
    ),
    "message": (("sentimentStr", "Sentiment"), ("sentimentScoreNum", "Sentiment score")),
    "company": (
        ("industryStr", "Industry"),
        ("employeesNum", "Employees"),
        ("partnerBool", "Partner"),
    ),
}
SUFFIX_TYPES = {
    "Str": "string",
    "Num": "number",
    "Bool": "boolean",
    "At": "date",
    "Tree": "tree",
    "Txt": "text",
    "Url": "url",
    "Id": "id",
}


def custom_suffix(name: str) -> str | None:
    for suffix in ("Bool", "Tree", "Str", "Num", "Txt", "Url", "At", "Id"):
        if name.endswith(suffix):
            return suffix
    return None
