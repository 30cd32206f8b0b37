"""index api_tokens.revoked_at for the revocation sweep every process runs twice a second

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_api_tokens_revoked_at"), "api_tokens", ["revoked_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_tokens_revoked_at"), table_name="api_tokens")
