-- Pages whose cache invalidation Redis missed when their write committed
-- (Redis down, hung or refusing connections at that moment). Without this,
-- an outage longer than the write's own tries left the copy cached before
-- the write in Redis until its TTL, for every isolate but the writer's.
-- The write notes its page here after the response; an invalidation that
-- lands later (the write's own tries, or the cron, every minute) removes
-- the row, but only with the token it read before sending it: a write that
-- missed since then replaced the token, and its row stays for an
-- invalidation of its own.

CREATE TABLE IF NOT EXISTS page_cache_pending (
    slug VARCHAR(128) NOT NULL,
    -- A random token of the latest write that noted the page.
    note BIGINT NOT NULL,
    -- When that write noted it (UTC): the cron takes the oldest first.
    noted_at DATETIME(3) NOT NULL,
    PRIMARY KEY (slug),
    KEY page_cache_pending_noted (noted_at)
);
