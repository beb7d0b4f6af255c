-- What each model a worker serves accepts, as the worker reported it when it
-- registered: JSON TEXT, an object keyed by model id (empty: it reported none).
ALTER TABLE workers ADD COLUMN capabilities TEXT NOT NULL DEFAULT '{}';
