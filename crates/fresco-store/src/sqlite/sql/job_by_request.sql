SELECT id FROM jobs WHERE request_id = ?1
