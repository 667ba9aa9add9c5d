"""Rules that recognise a secret by its shape: the token formats providers publish, private
key blocks, JWTs, credentials in URLs, and assignments of long literals to secret-sounding
names. Each rule has a stable id (what findings and `.secretsignore` name) and a
severity; none needs the value to be known.

Formats are taken from the providers' own documentation of their prefixes and lengths
(GitHub `ghp_` + 36, GitLab `glpat-` + 20, Slack `xox?-`, Stripe `sk_live_`, AWS `AKIA` +
16 upper-case characters, Google `AIza` + 35, …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HIGH = "high"
MEDIUM = "medium"


@dataclass(frozen=True)
class Rule:
    """One shape of secret."""

    id: str
    description: str
    pattern: re.Pattern[str]
    severity: str = HIGH


def _rule(rule_id: str, description: str, regex: str, severity: str = HIGH) -> Rule:
    return Rule(rule_id, description, re.compile(regex), severity)


RULES: tuple[Rule, ...] = (
    _rule(
        "aws-access-key-id",
        "AWS access key id",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[A-Z2-7]{16}\b",
    ),
    _rule(
        "aws-secret-access-key",
        "AWS secret access key assigned to an aws-named variable",
        r"(?i)aws.{0,20}?(?:secret|key).{0,20}?['\"=:]\s*['\"]?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    ),
    _rule(
        "github-token",
        "GitHub token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
    ),
    _rule("gitlab-token", "GitLab token", r"\bgl(?:pat|dt|ptt|rt|cbt|oas)-[A-Za-z0-9_-]{20,}\b"),
    _rule("slack-token", "Slack token", r"\bxox[abposr]-(?:[0-9]+-)+[A-Za-z0-9-]{6,}\b"),
    _rule(
        "slack-webhook",
        "Slack incoming webhook URL",
        r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{20,}",
    ),
    _rule(
        "stripe-key", "Stripe live secret or restricted key", r"\b[rs]k_live_[A-Za-z0-9]{20,247}\b"
    ),
    _rule("google-api-key", "Google API key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    _rule(
        "openai-key",
        "OpenAI API key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}",
    ),
    _rule(
        "anthropic-key", "Anthropic API key", r"\bsk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}"
    ),
    _rule("npm-token", "npm access token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    _rule("pypi-token", "PyPI upload token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    _rule("azure-storage-key", "Azure storage account key", r"AccountKey=[A-Za-z0-9+/=]{86,88}"),
    _rule("age-secret-key", "age identity (secret key)", r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b"),
    _rule(
        "private-key",
        "private key block",
        r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
    ),
    _rule("putty-private-key", "PuTTY private key", r"PuTTY-User-Key-File-[23]:"),
    _rule(
        "jwt",
        "JSON Web Token",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
    ),
    _rule(
        "url-credentials",
        "password in a URL",
        r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\"]{1,64}:([^\s@/'\"]{8,})@[A-Za-z0-9.-]+",
        MEDIUM,
    ),
    _rule(
        "generic-secret",
        "long literal assigned to a secret-sounding name",
        r"(?i)\b[a-z0-9_.-]*(?:password|passwd|secret|token|api_?key|access_?key)[a-z0-9_.-]*"
        r"\s*[:=]\s*['\"][^'\"\s$]{12,}['\"]",
        MEDIUM,
    ),
)
RULE_IDS = frozenset(rule.id for rule in RULES)

# Placeholders people write on purpose, never reported by the generic rules.
_PLACEHOLDER = re.compile(
    r"(?i)(?:x{6,}|\*{6,}|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|example|changeme|your[_-]|dummy|redacted)"
)


@dataclass(frozen=True)
class PatternHit:
    """A rule matched a line at a column (1-based). The matched text is not kept."""

    rule: Rule
    column: int


def scan_line(line: str) -> list[PatternHit]:
    """Every rule that matches `line`, leftmost first (one hit per rule per line)."""
    hits = []
    for rule in RULES:
        match = rule.pattern.search(line)
        if match is None:
            continue
        if rule.severity == MEDIUM and _PLACEHOLDER.search(match.group(0)):
            continue
        hits.append(PatternHit(rule, match.start() + 1))
    hits.sort(key=lambda hit: hit.column)
    return hits
