-- Files uploaded to B2 through presigned URLs. A row is created when the
-- upload is granted (status 'pending') and becomes 'complete' once the
-- object has been checked; the cron marks rows pending past the deadline
-- 'expired', deletes their objects, then the rows.

CREATE TABLE IF NOT EXISTS uploads (
    id VARCHAR(40) NOT NULL,
    object_key VARCHAR(512) NOT NULL,
    -- The name the file is downloaded under (never part of object_key).
    file_name VARCHAR(255) NOT NULL,
    content_type VARCHAR(255) NOT NULL,
    max_bytes BIGINT NOT NULL,
    size_bytes BIGINT NULL,
    status VARCHAR(16) NOT NULL,
    author VARCHAR(320) NOT NULL,
    created_at DATETIME(3) NOT NULL,
    completed_at DATETIME(3) NULL,
    PRIMARY KEY (id),
    KEY uploads_status_created (status, created_at)
);
