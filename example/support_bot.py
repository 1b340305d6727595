"""A small, deterministic support bot for Acme Cloud Storage: the application the example suite evaluates.

It matches a question against keyword rules and answers from a knowledge base — no network, no model —
so its scores are stable from run to run, and a change to a rule or an answer shows up as a score change.
"""

from __future__ import annotations

import re

FALLBACK = "I'm not sure about that. Let me connect you with a human agent."

KNOWLEDGE_BASE: dict[str, str] = {
    "reset_password": "Go to Settings > Security and click 'Reset password'. We email you a link valid for 30 minutes.",
    "pricing": "The Basic plan is $5 per month for 100 GB; the Pro plan is $12 per month for 2 TB.",
    "cancel": "You can cancel anytime from Billing > Subscription. Your files stay available until the end of the billing period.",
    "refund": "We refund annual plans within 30 days of purchase. Monthly plans are not refunded.",
    "storage_limit": "When you reach your storage limit, uploads pause until you free up space or upgrade your plan.",
    "share": "Right-click a file and choose 'Share link'. Links can be set to expire after 1, 7 or 30 days.",
    "two_factor": "Enable two-factor authentication under Settings > Security > Two-factor, using an authenticator app.",
    "delete_account": "Deleting your account removes all files permanently after 14 days. Go to Settings > Account > Delete.",
    "offline": "Mark a folder 'Available offline' in the desktop app to keep a local copy that syncs when you reconnect.",
    "file_size": "Single files can be up to 50 GB on the Pro plan and 5 GB on the Basic plan.",
    "recover_deleted": "Deleted files stay in Trash for 30 days. Open Trash and choose 'Restore' to recover them.",
    "contact": "You can reach support by chat 24/7, or by email at support@acme.example.",
}

RULES: list[tuple[str, tuple[str, ...]]] = [
    ("two_factor", ("two-factor", "2fa", "two factor", "authenticator")),
    ("reset_password", ("password", "locked out", "can't log in")),
    ("refund", ("refund", "money back")),
    ("cancel", ("cancel", "unsubscribe", "stop my subscription")),
    ("pricing", ("price", "pricing", "cost", "how much", "plans")),
    ("storage_limit", ("storage limit", "out of space", "full", "quota")),
    ("share", ("share", "sharing", "send a file")),
    ("delete_account", ("delete my account", "close my account", "delete account")),
    ("offline", ("offline", "without internet")),
    ("file_size", ("file size", "largest file", "biggest file", "max size", "upload limit")),
    ("recover_deleted", ("recover", "restore", "trash", "deleted file")),
    ("contact", ("contact", "talk to", "support team", "phone")),
]


def answer(question: str) -> str:
    """Answer a customer question from the knowledge base, or hand over to a human."""
    text = re.sub(r"\s+", " ", question.lower())
    for intent, keywords in RULES:
        if any(keyword in text for keyword in keywords):
            return KNOWLEDGE_BASE[intent]
    return FALLBACK
