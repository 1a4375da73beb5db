"""Tools that move users off the pre-refactor grouping (see MIGRATION.md)."""
