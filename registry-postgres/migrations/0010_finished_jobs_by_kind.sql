-- Housekeeping keeps each kind's newest finished jobs (JobQueue::trim_jobs_beyond) and trims by
-- age: both read the finished jobs of one kind, oldest first, from this index alone.
CREATE INDEX jobs_kind_finished ON jobs (kind, updated_ms, id) WHERE status IN ('succeeded', 'failed', 'cancelled');
