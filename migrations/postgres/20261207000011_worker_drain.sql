-- A drained worker finishes the task it runs, claims nothing more and
-- exits. `draining_at`: since when an operator drained it (NULL: not
-- draining); a registration clears it.
ALTER TABLE workers ADD COLUMN draining_at TIMESTAMPTZ;
