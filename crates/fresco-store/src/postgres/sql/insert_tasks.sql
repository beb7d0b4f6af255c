-- A chunk of a submission's tasks in one statement: one array per column,
-- unnested into rows. ORDER BY idx makes `seq` (the dispatch order) follow
-- the task index.
INSERT INTO tasks (id, job_id, idx, model, priority, max_attempts, prompt,
    negative_prompt, seed, steps, width, height, guidance, n, sampler,
    schedule, coordinates)
SELECT t.id, $2, t.idx, $3, $4, $5, t.prompt, t.negative_prompt, t.seed,
    t.steps, t.width, t.height, t.guidance, t.n, t.sampler, t.schedule::JSONB,
    t.coordinates::JSONB
FROM UNNEST($1::UUID[], $6::INT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[],
    $10::INT[], $11::INT[], $12::INT[], $13::REAL[], $14::INT[], $15::TEXT[],
    $16::TEXT[], $17::TEXT[])
    AS t(id, idx, prompt, negative_prompt, seed, steps, width, height,
         guidance, n, sampler, schedule, coordinates)
ORDER BY t.idx
RETURNING id, model, priority, seq,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
