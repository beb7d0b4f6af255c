SELECT DISTINCT unnest(models) AS model FROM workers ORDER BY 1
