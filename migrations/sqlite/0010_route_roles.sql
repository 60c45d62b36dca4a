-- The role an app behind the edge is told, in a header: JSON {"header", "user", "admin",
-- "admin_groups"}; NULL for routes whose app reads no role.
ALTER TABLE proxy_routes ADD COLUMN roles TEXT;
