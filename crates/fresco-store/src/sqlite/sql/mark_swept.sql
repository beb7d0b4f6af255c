-- Task ?1's attempts through ?2 hold no stray objects any more.
UPDATE tasks SET swept_through = ?2 WHERE id = ?1 AND swept_through < ?2
