"""Storage: the database row is the truth about every message; the broker only carries ids."""
