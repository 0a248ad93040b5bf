-- Pages and their revisions. A page row holds the current state (title,
-- revision number, soft-delete mark) so reads need one row; every change
-- appends a revision row, written in the same transaction.
-- Plain SQL that TiDB, MySQL 8 and MariaDB 10.11 all accept.

CREATE TABLE IF NOT EXISTS pages (
    id BIGINT NOT NULL AUTO_INCREMENT,
    slug VARCHAR(128) NOT NULL,
    title VARCHAR(200) NOT NULL,
    revision BIGINT NOT NULL,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    deleted_at DATETIME(3) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY pages_slug (slug)
);

CREATE TABLE IF NOT EXISTS revisions (
    id BIGINT NOT NULL AUTO_INCREMENT,
    page_id BIGINT NOT NULL,
    number BIGINT NOT NULL,
    title VARCHAR(200) NOT NULL,
    body MEDIUMTEXT NOT NULL,
    author VARCHAR(320) NOT NULL,
    created_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY revisions_page_number (page_id, number)
);
