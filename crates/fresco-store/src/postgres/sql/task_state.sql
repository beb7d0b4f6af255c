-- Why a guarded update touched no row.
SELECT state, attempt FROM tasks WHERE id = $1
