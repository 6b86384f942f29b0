"""What the simulated model answers in ``review_documents.py``: deterministic, and meaningful.

A review request (its output schema is a finding's) is judged by keyword rules: the first rule
with a phrase in the paragraph decides the severity and the issue, and the note quotes the words
around the phrase. A synthesis request (its output schema is a report's) gets the findings and
partial reports of its prompt, a JSON list, added up. The simulator turns the dict returned here
into the structured output pydantic-ai asks for.
"""

from __future__ import annotations

import json
from typing import Any

from fanfold.testing import SimRequest

# (severity, issue, phrases): the first rule with a phrase in a paragraph decides its finding.
RULES = [
    ("high", "secret in plain text", ("live api key", "hard-coded", "as a plain string")),
    ("high", "no rollback plan", ("no rollback", "cannot be rolled back")),
    ("high", "data loss", ("data loss",)),
    ("medium", "single point of failure", ("single point of failure", "only one engineer", "one replica")),
    ("medium", "untested change", ("untested", "no tests", "without tests", "not yet run", "did not cover")),
    ("medium", "schedule slip", ("slipped", "behind schedule")),
    ("low", "manual step", ("manually", "by hand")),
    ("low", "open TODO", ("todo", "tbd")),
]


def answer(request: SimRequest) -> dict[str, Any]:
    """The simulated model's answer to either kind of request."""
    properties = (request.output_schema or {}).get("properties", {})
    if "sections" in properties:
        return merge(json.loads(request.last_user_text))
    return review(request.last_user_text)


def review(prompt: str) -> dict[str, Any]:
    """A finding for the paragraph in ``prompt``: ``Document: <name>``, a blank line, the text."""
    header, _, text = prompt.partition("\n\n")
    document = header.removeprefix("Document:").strip()
    lowered = text.lower()
    for severity, issue, phrases in RULES:
        for phrase in phrases:
            if (at := lowered.find(phrase)) >= 0:
                return {"document": document, "severity": severity, "issue": issue, "note": quote(text, at, phrase)}
    return {"document": document, "severity": "none", "issue": "none", "note": "no issue found"}


def quote(text: str, at: int, phrase: str, margin: int = 20) -> str:
    """The words around ``phrase``, found at ``text[at]``."""
    start, end = text.rfind(" ", 0, max(0, at - margin)) + 1, text.find(" ", at + len(phrase) + margin)
    end = len(text) if end < 0 else end
    return f'"{"..." * (start > 0)}{text[start:end]}{"..." * (end < len(text))}"'


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from findings and reports (told apart by their fields), in the order given."""
    sections = 0
    documents: dict[str, None] = {}  # an ordered set
    severities = dict.fromkeys(("high", "medium", "low", "none"), 0)
    issues: dict[str, dict[str, Any]] = {}
    for part in parts:
        if "sections" in part:  # a report from an earlier level
            sections += part["sections"]
            documents.update(dict.fromkeys(part["documents"]))
            for severity, count in part["severities"].items():
                severities[severity] += count
            found = part["issues"]
        else:  # a finding
            sections += 1
            documents[part["document"]] = None
            severities[part["severity"]] += 1
            found = [] if part["severity"] == "none" else [_issue(part)]
        for issue in found:
            seen = issues.setdefault(issue["issue"], {**issue, "documents": []})
            seen["documents"] += [d for d in issue["documents"] if d not in seen["documents"]]
    report = {"sections": sections, "documents": list(documents), "severities": severities}
    return report | {"issues": list(issues.values())}


def _issue(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "issue": finding["issue"],
        "severity": finding["severity"],
        "documents": [finding["document"]],
        "example": finding["note"],
    }
