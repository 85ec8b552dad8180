"""Alembic environment: runs on the connection :func:`db.migrate.upgrade` hands in."""

from alembic import context

from db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    from db.connect import create_db_engine
    from shoelabel.settings import get_settings

    connection = create_db_engine(get_settings().db_url).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
context.run_migrations()
