SELECT name, weight FROM tenants ORDER BY name
