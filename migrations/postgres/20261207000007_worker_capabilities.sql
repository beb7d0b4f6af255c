-- What each model a worker serves accepts, as the worker reported it when it
-- registered: a JSON object keyed by model id (empty: it reported none).
ALTER TABLE workers ADD COLUMN capabilities JSONB NOT NULL DEFAULT '{}';
