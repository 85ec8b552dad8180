"""attributes: brand becomes the first of any number of attributes, each with its own classes

Revision ID: 0005
Revises: 0004

- ``attributes`` holds the attributes; ``brand`` is created first (id 1).
- ``brands`` becomes ``classes``: each class belongs to an attribute (the same name may be a class of
  two attributes), and a merged class points at the class it was merged into.
- The brand a photo arrived with moves from ``images.source_brand_id`` to ``imported_labels``, which
  holds what a photo arrived with for every attribute.
- Reviews and predictions name their attribute; their ``brand_id`` becomes ``class_id``. Every existing
  review and prediction is of brand.
- ``class_changes`` records renames and merges.

SQLite changes these tables by copying them (Alembic's batch mode), with foreign keys off while it
does (see :func:`db.migrate.upgrade`) and checked before the migration commits.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

BRAND_ID = 1
# Names for the constraints SQLite keeps unnamed, so that batch mode can drop them.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}

_SQLITE_IMAGE_TRIGGERS = [
    """CREATE TRIGGER count_images_insert AFTER INSERT ON images BEGIN
        UPDATE catalogue_counts SET photos = photos + 1 WHERE key = 'split:' || NEW.split; END""",
    """CREATE TRIGGER count_images_update AFTER UPDATE OF split ON images
        WHEN OLD.split IS NOT NEW.split BEGIN
        UPDATE catalogue_counts SET photos = photos - 1 WHERE key = 'split:' || OLD.split;
        UPDATE catalogue_counts SET photos = photos + 1 WHERE key = 'split:' || NEW.split; END""",
    """CREATE TRIGGER count_images_delete AFTER DELETE ON images BEGIN
        UPDATE catalogue_counts SET photos = photos - 1 WHERE key = 'split:' || OLD.split; END""",
]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    attributes = op.create_table(
        "attributes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=60), nullable=False, unique=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.bulk_insert(attributes, [{"name": "brand", "position": 0, "created_at": _now()}])
    assert op.get_bind().execute(sa.text("SELECT id FROM attributes WHERE name = 'brand'")).scalar() == BRAND_ID

    # brands -> classes of an attribute
    op.rename_table("brands", "classes")
    with op.batch_alter_table("classes", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("attribute_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
    op.execute(f"UPDATE classes SET attribute_id = {BRAND_ID}")
    with op.batch_alter_table("classes", naming_convention=NAMING) as batch:
        batch.alter_column("attribute_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint("uq_classes_name" if sqlite else "brands_name_key", type_="unique")
        batch.create_unique_constraint("uq_class_name", ["attribute_id", "name"])
        batch.create_foreign_key("fk_classes_attribute", "attributes", ["attribute_id"], ["id"])
        batch.create_foreign_key("fk_classes_merged_into", "classes", ["merged_into_id"], ["id"])

    # what each photo arrived with, per attribute
    op.create_table(
        "imported_labels",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("attribute_id", sa.Integer(), sa.ForeignKey("attributes.id"), primary_key=True),
        sa.Column("class_id", sa.Integer(), sa.ForeignKey("classes.id"), nullable=False),
    )
    op.create_index("ix_imported_labels_class", "imported_labels", ["class_id", "image_id"])
    op.execute(
        f"INSERT INTO imported_labels (image_id, attribute_id, class_id) "
        f"SELECT id, {BRAND_ID}, source_brand_id FROM images WHERE source_brand_id IS NOT NULL"
    )
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_source_brand_id")
        batch.drop_column("source_brand_id")
    if sqlite:  # the copy of images left its counting triggers behind
        for statement in _SQLITE_IMAGE_TRIGGERS:
            op.execute(statement)

    # reviews, predictions, model versions and rounds name their attribute; a class instead of a brand
    for table in ("model_versions", "rounds"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("attribute_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET attribute_id = {BRAND_ID}")
        with op.batch_alter_table(table) as batch:
            batch.alter_column("attribute_id", existing_type=sa.Integer(), nullable=False)
            batch.create_foreign_key(f"fk_{table}_attribute", "attributes", ["attribute_id"], ["id"])
    for table in ("reviews", "predictions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("attribute_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET attribute_id = {BRAND_ID}")
    with op.batch_alter_table("reviews") as batch:
        batch.alter_column("attribute_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("brand_id", new_column_name="class_id", existing_type=sa.Integer())
        batch.create_foreign_key("fk_reviews_attribute", "attributes", ["attribute_id"], ["id"])
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_model_brand_confidence")
        batch.drop_constraint("uq_prediction", type_="unique")
        batch.alter_column("attribute_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("brand_id", new_column_name="class_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key("fk_predictions_attribute", "attributes", ["attribute_id"], ["id"])
    with op.batch_alter_table("predictions") as batch:
        batch.create_unique_constraint("uq_prediction", ["image_id", "model_version_id", "kind", "attribute_id"])
        batch.create_index(
            "ix_predictions_model_class_confidence",
            ["model_version_id", "kind", "class_id", "confidence", "image_id"],
        )

    op.create_table(
        "class_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("attribute_id", sa.Integer(), sa.ForeignKey("attributes.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("class_id", sa.Integer(), sa.ForeignKey("classes.id"), nullable=False),
        sa.Column("into_class_id", sa.Integer(), sa.ForeignKey("classes.id"), nullable=True),
        sa.Column("old_name", sa.String(length=120), nullable=False),
        sa.Column("new_name", sa.String(length=120), nullable=False),
        sa.Column("changed_by", sa.String(length=120), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    """Back to brands only: what was stored for other attributes is dropped."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_table("class_changes")
    for table in ("reviews", "predictions"):
        op.execute(f"DELETE FROM {table} WHERE attribute_id <> {BRAND_ID}")
    op.execute(f"UPDATE rounds SET candidate_model_id = NULL, parent_model_id = NULL WHERE attribute_id <> {BRAND_ID}")
    op.execute(f"DELETE FROM jobs WHERE round_id IN (SELECT id FROM rounds WHERE attribute_id <> {BRAND_ID})")
    op.execute(f"DELETE FROM rounds WHERE attribute_id <> {BRAND_ID}")
    op.execute(f"DELETE FROM predictions WHERE model_version_id IN (SELECT id FROM model_versions WHERE attribute_id <> {BRAND_ID})")
    op.execute(f"UPDATE model_versions SET parent_id = NULL WHERE attribute_id <> {BRAND_ID}")
    op.execute(f"DELETE FROM model_versions WHERE attribute_id <> {BRAND_ID}")
    for table in ("model_versions", "rounds"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_attribute", type_="foreignkey")
            batch.drop_column("attribute_id")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_model_class_confidence")
        batch.drop_constraint("uq_prediction", type_="unique")
        batch.drop_constraint("fk_predictions_attribute", type_="foreignkey")
        batch.alter_column("class_id", new_column_name="brand_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("attribute_id")
    with op.batch_alter_table("predictions") as batch:
        batch.create_unique_constraint("uq_prediction", ["image_id", "model_version_id", "kind"])
        batch.create_index(
            "ix_predictions_model_brand_confidence",
            ["model_version_id", "kind", "brand_id", "confidence", "image_id"],
        )
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint("fk_reviews_attribute", type_="foreignkey")
        batch.alter_column("class_id", new_column_name="brand_id", existing_type=sa.Integer())
        batch.drop_column("attribute_id")
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("source_brand_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_images_source_brand", "classes", ["source_brand_id"], ["id"])
        batch.create_index("ix_images_source_brand_id", ["source_brand_id"])
    if sqlite:
        for statement in _SQLITE_IMAGE_TRIGGERS:
            op.execute(statement.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS"))
    op.execute(
        "UPDATE images SET source_brand_id = (SELECT l.class_id FROM imported_labels l "
        f"WHERE l.image_id = images.id AND l.attribute_id = {BRAND_ID})"
    )
    op.drop_table("imported_labels")
    op.execute(f"DELETE FROM classes WHERE attribute_id <> {BRAND_ID}")
    with op.batch_alter_table("classes", naming_convention=NAMING) as batch:
        batch.drop_constraint("fk_classes_merged_into", type_="foreignkey")
        batch.drop_constraint("fk_classes_attribute", type_="foreignkey")
        batch.drop_constraint("uq_class_name", type_="unique")
        batch.drop_column("merged_into_id")
        batch.drop_column("attribute_id")
        batch.create_unique_constraint("uq_brands_name" if sqlite else "brands_name_key", ["name"])
    op.rename_table("classes", "brands")
    op.drop_table("attributes")
