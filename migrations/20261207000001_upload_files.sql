-- A completed upload's file, copied from the object its presigned upload
-- URL wrote (uploads.object_key) to a key of its own that no URL can write:
-- the URL stays valid for a while after completion and could otherwise
-- replace the file's bytes. Written in the transaction that completes the
-- upload. Uploads completed without a copy (by a Worker from before this
-- table) have no row here and are served from object_key.
-- settled_at: when the cron deleted the uploaded object, once the URL had
-- surely expired; only the file is left in B2 from then on.

CREATE TABLE IF NOT EXISTS upload_files (
    upload_id VARCHAR(40) NOT NULL,
    file_key VARCHAR(512) NOT NULL,
    copied_at DATETIME(3) NOT NULL,
    settled_at DATETIME(3) NULL,
    PRIMARY KEY (upload_id),
    KEY upload_files_unsettled (settled_at, copied_at)
);
