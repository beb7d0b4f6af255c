-- Whether worker ?1 is draining (no row: unknown worker).
SELECT draining_at IS NOT NULL AS draining FROM workers WHERE id = ?1
