"""The numbered SQL migration files."""
