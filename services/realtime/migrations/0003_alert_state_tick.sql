-- The timestamp of the tick that last changed a rule's armed state. A transition is taken
-- only for a tick at least as new, so when several nodes evaluate the same ticks, a node's late
-- re-arm (or fire) cannot undo a newer transition taken by another node.
ALTER TABLE alert_rules ADD COLUMN state_tick bigint;
