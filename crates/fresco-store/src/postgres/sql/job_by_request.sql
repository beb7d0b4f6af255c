SELECT id FROM jobs WHERE tenant = $1 AND request_id = $2
