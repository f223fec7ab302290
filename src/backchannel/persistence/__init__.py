"""Postgres: the pool, migrations, and one module of plain SQL per aggregate."""
