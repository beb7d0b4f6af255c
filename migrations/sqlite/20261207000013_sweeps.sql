-- Sweeps: a job submitted as the product of parameter axes keeps those
-- axes (a JSON object of the varied axes: prompts, seeds, guidance, steps,
-- samplers, sizes; NULL for a job of listed tasks), and each of its tasks
-- its index along every varied axis (a JSON object such as
-- {"prompt":2,"seed":0}; NULL outside a sweep).
ALTER TABLE jobs ADD COLUMN sweep TEXT;
ALTER TABLE tasks ADD COLUMN coordinates TEXT;
