-- A worker's recent throughput counts the tasks it finished successfully
-- in the last minutes: read by worker and end time.
CREATE INDEX tasks_by_worker_succeeded ON tasks (worker_id, finished_at)
    WHERE state = 'succeeded';
