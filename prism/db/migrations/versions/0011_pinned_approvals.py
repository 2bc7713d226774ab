"""Approvals pinned to code, with the gates a promoter waived.

``models.approvals`` and the ``models.versions`` mirror gain ``code_sha256``: the hash of the
strategy code logged with the approved model (:mod:`prism.strategies.code`), which the model
checks compare before a version trades. ``models.approvals`` also gains ``waived`` (the gates
the promoter overrode, e.g. ``clean tree``, ``data gaps``) and ``waiver_reason``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE models.approvals ADD COLUMN code_sha256 text, "
        "ADD COLUMN waived text[] NOT NULL DEFAULT '{}', "
        "ADD COLUMN waiver_reason text NOT NULL DEFAULT ''"
    )
    op.execute("ALTER TABLE models.versions ADD COLUMN code_sha256 text")


def downgrade() -> None:
    op.execute("ALTER TABLE models.versions DROP COLUMN code_sha256")
    op.execute(
        "ALTER TABLE models.approvals DROP COLUMN waiver_reason, DROP COLUMN waived, "
        "DROP COLUMN code_sha256"
    )
