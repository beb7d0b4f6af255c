-- Per model of $1 that some registered worker serves: how many of its
-- workers are live (seen within two leases of $2 seconds, the rule
-- claim.sql uses), how many of those are not quarantined, and when one of
-- them was seen last.
SELECT m.model,
       count(*) FILTER (WHERE w.last_seen_at > now() - make_interval(secs => 2 * $2::FLOAT8)) AS live,
       count(*) FILTER (WHERE w.last_seen_at > now() - make_interval(secs => 2 * $2::FLOAT8)
                          AND w.quarantined_at IS NULL) AS available,
       max(w.last_seen_at) AS last_seen_at
FROM workers w, unnest(w.models) AS m(model)
WHERE m.model = ANY($1)
GROUP BY m.model
ORDER BY m.model
