-- A completed upload's file is a copy of the checked object under a key of
-- its own (`files/<id>`): the presigned upload URL stays valid for a while
-- after completion and could otherwise replace the file's bytes. Uploads
-- granted before this column have none and are served from object_key.
-- A new status value, 'settled', marks a completed upload whose uploaded
-- object the cron removed after its URL expired (VARCHAR(16) holds it).

ALTER TABLE uploads ADD COLUMN IF NOT EXISTS file_key VARCHAR(512) NULL;
