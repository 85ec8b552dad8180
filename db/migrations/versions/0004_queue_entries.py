"""queue entries: each photo's queue stage and the current models' uncertainty scores, indexed

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

UNSCORED = -1e9
SCORES = ("least_confidence", "margin", "entropy", "disagreement")


# The counters follow every insert, move and delete of a photo or a queue entry, whatever writes it.
_SQLITE_COUNT = [
    """CREATE TRIGGER count_{table}_insert AFTER INSERT ON {table} BEGIN
        UPDATE catalogue_counts SET photos = photos + 1 WHERE key = '{prefix}:' || NEW.{column}; END""",
    """CREATE TRIGGER count_{table}_update AFTER UPDATE OF {column} ON {table}
        WHEN OLD.{column} IS NOT NEW.{column} BEGIN
        UPDATE catalogue_counts SET photos = photos - 1 WHERE key = '{prefix}:' || OLD.{column};
        UPDATE catalogue_counts SET photos = photos + 1 WHERE key = '{prefix}:' || NEW.{column}; END""",
    """CREATE TRIGGER count_{table}_delete AFTER DELETE ON {table} BEGIN
        UPDATE catalogue_counts SET photos = photos - 1 WHERE key = '{prefix}:' || OLD.{column}; END""",
]
# PostgreSQL: inserts and deletes once per statement (a chunk of photos is one update of each counter),
# a changed split or stage once per row that changed.
_POSTGRES_COUNT = [
    """CREATE FUNCTION count_{table}_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE catalogue_counts c SET photos = c.photos + n.k
            FROM (SELECT '{prefix}:' || {column} AS key, count(*) AS k FROM new_rows GROUP BY {column}) n
            WHERE c.key = n.key;
        ELSE
            UPDATE catalogue_counts c SET photos = c.photos - o.k
            FROM (SELECT '{prefix}:' || {column} AS key, count(*) AS k FROM old_rows GROUP BY {column}) o
            WHERE c.key = o.key;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION count_{table}_moves() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE catalogue_counts SET photos = photos - 1 WHERE key = '{prefix}:' || OLD.{column};
        UPDATE catalogue_counts SET photos = photos + 1 WHERE key = '{prefix}:' || NEW.{column};
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER count_{table}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION count_{table}_rows()""",
    """CREATE TRIGGER count_{table}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION count_{table}_rows()""",
    """CREATE TRIGGER count_{table}_update AFTER UPDATE OF {column} ON {table} FOR EACH ROW
        WHEN (OLD.{column} IS DISTINCT FROM NEW.{column}) EXECUTE FUNCTION count_{table}_moves()""",
]
_COUNTED = (
    {"table": "images", "column": "split", "prefix": "split"},
    {"table": "queue_entries", "column": "stage", "prefix": "stage"},
)
COUNT_TRIGGERS = {
    "sqlite": [t.format(**c) for c in _COUNTED for t in _SQLITE_COUNT],
    "postgresql": [t.format(**c) for c in _COUNTED for t in _POSTGRES_COUNT],
}
DROP_TRIGGERS = {
    "sqlite": [f"DROP TRIGGER count_{c['table']}_{what}" for c in _COUNTED for what in ("insert", "update", "delete")],
    "postgresql": [
        *(
            f"DROP TRIGGER count_{c['table']}_{what} ON {c['table']}"
            for c in _COUNTED
            for what in ("insert", "update", "delete")
        ),
        *(f"DROP FUNCTION count_{c['table']}_{what}()" for c in _COUNTED for what in ("rows", "moves")),
    ],
}


def upgrade() -> None:
    op.create_table(
        "queue_entries",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True, autoincrement=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in SCORES),
        sa.Column("random_key", sa.Integer(), nullable=False),
    )
    for name in SCORES:
        op.create_index(f"ix_queue_{name}", "queue_entries", ["stage", sa.text(f"{name} DESC"), "image_id"])
    op.create_index("ix_queue_random", "queue_entries", ["stage", "random_key", "image_id"])
    op.create_table(
        "queue_scoring",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version_ids", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    # Every stored photo gets its entry; its scores follow on first use (no version has been scored yet).
    decisive = "('confirm', 'correct', 'not_a_shoe')"
    op.execute(
        f"""
        INSERT INTO queue_entries (image_id, stage, {", ".join(SCORES)}, random_key)
        SELECT i.id,
               CASE WHEN EXISTS (SELECT 1 FROM reviews r WHERE r.image_id = i.id AND r.undone_at IS NULL
                                 AND r.action IN {decisive}) THEN 2
                    WHEN i.source_brand_id IS NOT NULL THEN 1 ELSE 0 END,
               {", ".join(str(UNSCORED) for _ in SCORES)},
               (i.id * 2654435761) % 2147483648
        FROM images i
        """
    )
    # Stage 3 (not a shoe): the latest live decisive review says so.
    op.execute(
        f"""
        UPDATE queue_entries SET stage = 3 WHERE image_id IN (
            SELECT r.image_id FROM reviews r WHERE r.undone_at IS NULL AND r.action = 'not_a_shoe'
            AND NOT EXISTS (SELECT 1 FROM reviews l WHERE l.image_id = r.image_id AND l.undone_at IS NULL
                            AND l.action IN {decisive}
                            AND (l.created_at > r.created_at OR (l.created_at = r.created_at AND l.id > r.id))))
        """
    )
    op.create_table(
        "catalogue_counts",
        sa.Column("key", sa.String(length=32), primary_key=True),
        sa.Column("photos", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO catalogue_counts (key, photos) "
        "SELECT 'stage:' || CAST(s.stage AS VARCHAR(8)), (SELECT count(*) FROM queue_entries q WHERE q.stage = s.stage) "
        "FROM (SELECT 0 AS stage UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) s"
    )
    op.execute(
        "INSERT INTO catalogue_counts (key, photos) "
        "SELECT 'split:' || s.split, (SELECT count(*) FROM images i WHERE i.split = s.split) "
        "FROM (SELECT 'train' AS split UNION ALL SELECT 'holdout' UNION ALL SELECT 'pool') s"
    )
    for statement in COUNT_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)
    # Browse at scale: the current model's predictions sorted by confidence (overall, and per predicted brand
    # with the image: counted from the index alone), reviews by reviewer and image.
    op.create_index(
        "ix_predictions_model_confidence", "predictions", ["model_version_id", "kind", "confidence", "image_id"]
    )
    op.drop_index("ix_predictions_model_kind", "predictions")  # a prefix of the one above
    op.create_index(
        "ix_predictions_model_brand_confidence",
        "predictions",
        ["model_version_id", "kind", "brand_id", "confidence", "image_id"],
    )
    op.create_index("ix_reviews_reviewer_image", "reviews", ["reviewer", "image_id"])


def downgrade() -> None:
    op.drop_index("ix_reviews_reviewer_image", "reviews")
    op.drop_index("ix_predictions_model_brand_confidence", "predictions")
    op.create_index("ix_predictions_model_kind", "predictions", ["model_version_id", "kind"])
    op.drop_index("ix_predictions_model_confidence", "predictions")
    for statement in DROP_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("catalogue_counts")
    op.drop_table("queue_scoring")
    op.drop_table("queue_entries")
