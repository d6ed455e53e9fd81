-- The view a rollback's snapshot was recorded under, when it is not the view the service
-- names (a pinned slot served by its base view's snapshot). Empty means the same view.
ALTER TABLE service_rollbacks ADD COLUMN snapshot_view TEXT NOT NULL DEFAULT '';
