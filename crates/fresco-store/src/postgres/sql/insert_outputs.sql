INSERT INTO outputs (task_id, attempt, idx, key, width, height, seed, bytes, sha256)
SELECT $1, $2, o.idx, o.key, o.width, o.height, o.seed, o.bytes, o.sha256
FROM UNNEST($3::INT[], $4::TEXT[], $5::INT[], $6::INT[], $7::BIGINT[], $8::BIGINT[], $9::TEXT[])
    AS o(idx, key, width, height, seed, bytes, sha256)
