"""evaluation draws: a share of the review pool's answered photos is held out for evaluation

Revision ID: 0006
Revises: 0005

``evaluation_draws`` records, for each review-pool photo, the part it went to on its first decisive
answer. Photos of the pool answered before this release may have been trained on already: each gets a
draw to training, so none of them is ever moved to the evaluation part.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "evaluation_draws",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True, autoincrement=False),
        sa.Column("attribute_id", sa.Integer(), sa.ForeignKey("attributes.id"), nullable=True),
        sa.Column("class_id", sa.Integer(), sa.ForeignKey("classes.id"), nullable=True),
        sa.Column("held_out", sa.Boolean(), nullable=False),
        sa.Column("drawn_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_evaluation_draws_class", "evaluation_draws", ["attribute_id", "class_id", "held_out"])
    op.get_bind().execute(
        sa.text(
            "INSERT INTO evaluation_draws (image_id, attribute_id, class_id, held_out, drawn_at) "
            "SELECT i.id, NULL, NULL, :no, :now FROM images i WHERE i.split = 'pool' AND EXISTS ("
            "SELECT 1 FROM reviews r WHERE r.image_id = i.id AND r.undone_at IS NULL "
            "AND r.action IN ('confirm', 'correct', 'not_a_shoe'))"
        ),
        {"no": False, "now": datetime.now(UTC).replace(tzinfo=None)},
    )


def downgrade() -> None:
    op.drop_index("ix_evaluation_draws_class", table_name="evaluation_draws")
    op.drop_table("evaluation_draws")
