SELECT DISTINCT m.value AS model FROM workers, json_each(workers.models) AS m
ORDER BY 1
