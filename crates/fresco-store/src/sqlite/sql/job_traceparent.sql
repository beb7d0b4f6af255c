SELECT traceparent FROM jobs WHERE id = ?1
