INSERT INTO outputs (task_id, attempt, idx, key, width, height, seed, bytes)
SELECT $1, $2, o.idx, o.key, o.width, o.height, o.seed, o.bytes
FROM UNNEST($3::INT[], $4::TEXT[], $5::INT[], $6::INT[], $7::BIGINT[], $8::BIGINT[])
    AS o(idx, key, width, height, seed, bytes)
