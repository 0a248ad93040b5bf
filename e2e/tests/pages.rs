//! The pages API through the real Worker in workerd, against TiDB's HTTP
//! API (the local gateway in front of MariaDB): create, read with ETags,
//! conditional updates, revisions, pagination, deletion, and the problem
//! document of every client mistake.

use e2e::access::user_token;
use e2e::{api, database, http, json, missed_invalidations, run_cron, title_and_cache, unique};
use serde_json::{json, Value};

fn page_url(slug: &str) -> String {
    format!("{}/v1/pages/{slug}", api())
}

async fn put(slug: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http()
        .put(page_url(slug))
        .header("cf-access-jwt-assertion", user_token("editor@example.com"))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn etag(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

async fn problem(response: reqwest::Response, status: u16, kind: &str) -> Value {
    let got = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type.unwrap(), "application/problem+json");
    assert_eq!(body["type"], kind, "{body}");
    assert!(body["instance"].is_string());
    body
}

#[tokio::test]
async fn a_page_is_created_read_updated_with_etags_and_deleted() {
    let slug = unique("page-");
    let created = put(&slug, &json!({"title": "First", "body": "# One"}), &[]).await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.headers()["location"],
        format!("/v1/pages/{slug}").as_str()
    );
    let first_tag = etag(&created);
    let page: Value = created.json().await.unwrap();
    assert_eq!(page["revision"], 1);
    assert_eq!(page["author"], "editor@example.com");

    let read = http().get(page_url(&slug)).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(etag(&read), first_tag);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["title"], "First");
    assert_eq!(body["body"], "# One");
    assert!(body["updated_at"].as_str().unwrap().ends_with('Z'));

    let unchanged = http()
        .get(page_url(&slug))
        .header("if-none-match", &first_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    let updated = put(
        &slug,
        &json!({"title": "Second", "body": "# Two"}),
        &[("if-match", &first_tag)],
    )
    .await;
    assert_eq!(updated.status(), 200);
    let second_tag = etag(&updated);
    assert_ne!(second_tag, first_tag);
    let second: Value = updated.json().await.unwrap();

    // A writer still holding the first revision loses, and nothing changes.
    let lost = put(
        &slug,
        &json!({"title": "Lost", "body": "stale"}),
        &[("if-match", &first_tag)],
    )
    .await;
    problem(lost, 412, "/problems/precondition-failed").await;
    let create_only = put(
        &slug,
        &json!({"title": "Again", "body": ""}),
        &[("if-none-match", "*")],
    )
    .await;
    problem(create_only, 412, "/problems/precondition-failed").await;
    let current: Value = json(http().get(page_url(&slug))).await;
    assert_eq!(current["title"], "Second");

    let revisions: Value = json(http().get(format!("{}/revisions", page_url(&slug)))).await;
    let numbers: Vec<i64> = revisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(revisions["items"][0]["author"], "editor@example.com");
    // One instant per write: the answer, the stored page and its revision.
    assert_eq!(current["updated_at"], second["updated_at"]);
    assert_eq!(revisions["items"][0]["created_at"], second["updated_at"]);
    assert_eq!(revisions["items"][1]["created_at"], page["updated_at"]);
    assert_ne!(page["updated_at"], second["updated_at"]);

    let stale_delete = http()
        .delete(page_url(&slug))
        .header("cf-access-jwt-assertion", user_token("editor@example.com"))
        .header("if-match", &first_tag)
        .send()
        .await
        .unwrap();
    problem(stale_delete, 412, "/problems/precondition-failed").await;
    let deleted = http()
        .delete(page_url(&slug))
        .header("cf-access-jwt-assertion", user_token("editor@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = http().get(page_url(&slug)).send().await.unwrap();
    problem(gone, 404, "/problems/not-found").await;

    // Written again, it is created anew to its readers, who last got a
    // 404 (RFC 9110: a PUT that creates a representation answers 201); its
    // revisions go on from where they were.
    let again = put(
        &slug,
        &json!({"title": "Again", "body": "b"}),
        &[("if-none-match", "*")],
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["location"], format!("/v1/pages/{slug}"));
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["title"].clone(), again["revision"].clone()),
        (json!("Again"), json!(3))
    );
}

#[tokio::test]
async fn listings_paginate_across_page_boundaries() {
    let prefix = unique("list-");
    let slugs: Vec<String> = (0..5).map(|i| format!("{prefix}-{i}")).collect();
    for slug in &slugs {
        let created = put(slug, &json!({"title": slug, "body": "x"}), &[]).await;
        assert_eq!(created.status(), 201);
    }
    // Walk the whole listing two at a time; other tests add pages
    // meanwhile, so look only at ours: all there, once each, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{}/v1/pages?limit=2", api());
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let listing: Value = http().get(url).send().await.unwrap().json().await.unwrap();
        let items = listing["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["slug"].as_str().unwrap().to_owned())
                .filter(|s| s.starts_with(&prefix)),
        );
        pages += 1;
        match listing["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10_000, "the listing does not end");
    }
    assert_eq!(seen, slugs);
}

#[tokio::test]
async fn client_mistakes_are_problem_documents_and_write_nothing() {
    let slug = unique("bad-");
    let no_token = http()
        .put(page_url(&slug))
        .json(&json!({"title": "t", "body": "b"}))
        .send()
        .await
        .unwrap();
    problem(no_token, 401, "/problems/unauthorized").await;

    let bad_slug = put("Not_A_Slug", &json!({"title": "t", "body": "b"}), &[]).await;
    problem(bad_slug, 400, "/problems/bad-request").await;

    let empty_title = put(&slug, &json!({"title": " ", "body": "b"}), &[]).await;
    problem(empty_title, 422, "/problems/validation-failed").await;

    let unknown_field = put(&slug, &json!({"title": "t", "body": "b", "tags": []}), &[]).await;
    problem(unknown_field, 422, "/problems/validation-failed").await;

    let big_body = put(
        &slug,
        &json!({"title": "t", "body": "x".repeat(600 * 1024)}),
        &[],
    )
    .await;
    problem(big_body, 422, "/problems/validation-failed").await;

    let huge_request = put(
        &slug,
        &json!({"title": "t", "body": "x".repeat(2 << 20)}),
        &[],
    )
    .await;
    problem(huge_request, 413, "/problems/payload-too-large").await;

    // Over the Worker's 1 MiB: read to the end, then refused.
    let huge_request = put(
        &slug,
        &json!({"title": "t", "body": "x".repeat(2 << 20)}),
        &[],
    )
    .await;
    problem(huge_request, 413, "/problems/payload-too-large").await;

    let not_json = http()
        .put(page_url(&slug))
        .header("cf-access-jwt-assertion", user_token("editor@example.com"))
        .header("content-type", "text/plain")
        .body("title=t")
        .send()
        .await
        .unwrap();
    problem(not_json, 415, "/problems/unsupported-media-type").await;

    let broken_json = http()
        .put(page_url(&slug))
        .header("cf-access-jwt-assertion", user_token("editor@example.com"))
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    problem(broken_json, 400, "/problems/bad-request").await;

    let bad_tag = put(
        &slug,
        &json!({"title": "t", "body": "b"}),
        &[("if-match", "no-quotes")],
    )
    .await;
    problem(bad_tag, 400, "/problems/bad-request").await;

    let bad_cursor = http()
        .get(format!("{}/v1/pages?cursor=nonsense", api()))
        .send()
        .await
        .unwrap();
    problem(bad_cursor, 400, "/problems/bad-request").await;

    // None of the above wrote anything.
    let nothing = http().get(page_url(&slug)).send().await.unwrap();
    problem(nothing, 404, "/problems/not-found").await;
}

#[tokio::test]
async fn concurrent_writers_never_deadlock_and_only_one_wins_a_revision() {
    let prefix = unique("race-");
    let creates = (0..6).map(|i| {
        let slug = format!("{prefix}-{i}");
        async move {
            put(&slug, &json!({"title": "t", "body": "b"}), &[])
                .await
                .status()
        }
    });
    for status in futures::future::join_all(creates).await {
        assert_eq!(status, 201);
    }

    let slug = format!("{prefix}-0");
    let current = etag(&http().get(page_url(&slug)).send().await.unwrap());
    let updates = (0..6).map(|i| {
        let (slug, current) = (slug.clone(), current.clone());
        async move {
            put(
                &slug,
                &json!({"title": format!("writer {i}"), "body": "b"}),
                &[("if-match", &current)],
            )
            .await
            .status()
        }
    });
    let statuses = futures::future::join_all(updates).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        5,
        "{statuses:?}"
    );
    let page: Value = json(http().get(page_url(&slug))).await;
    assert_eq!(page["revision"], 2);
}

/// Writers creating one new page at once. Under READ COMMITTED neither
/// engine locks a missing row (`store::LockWait`), so several can get
/// past the locking read before any inserts; all but one of those then
/// fail on the unique slug and run again, with a row to lock. Every
/// write still lands as a revision of its own, and exactly one of them
/// creates the page; with `If-None-Match: *` (create only) exactly one
/// lands at all.
#[tokio::test]
async fn writers_creating_one_page_at_once_each_land_once() {
    const WRITERS: usize = 6;
    async fn race(slug: &str, headers: &[(&str, &str)]) -> Vec<(u16, Value)> {
        let writes = (0..WRITERS).map(|i| async move {
            let body = json!({"title": format!("writer {i}"), "body": "b"});
            let answer = put(slug, &body, headers).await;
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        });
        futures::future::join_all(writes).await
    }
    /// The revision number (under `key`) and the title of a listed
    /// revision or a write's answer.
    fn number_and_title(v: &Value, key: &str) -> (i64, String) {
        (
            v[key].as_i64().unwrap(),
            v["title"].as_str().unwrap().into(),
        )
    }
    async fn revisions(slug: &str) -> Vec<(i64, String)> {
        let listed: Value = json(http().get(format!("{}/revisions", page_url(slug)))).await;
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| number_and_title(r, "number"))
            .collect()
    }

    let slug = unique("same-new-");
    let answers = race(&slug, &[]).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "{statuses:?}");
    assert_eq!(created[0]["revision"], 1, "the creation is revision 1");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        WRITERS - 1,
        "{statuses:?}"
    );
    let mut landed: Vec<(i64, String)> = answers
        .iter()
        .map(|(_, b)| number_and_title(b, "revision"))
        .collect();
    landed.sort();
    let mut stored = revisions(&slug).await;
    stored.sort();
    assert_eq!(stored, landed, "each answer is one stored revision");
    let numbers: Vec<i64> = stored.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=WRITERS as i64).collect::<Vec<_>>());

    let slug = unique("create-only-");
    let answers = race(&slug, &[("if-none-match", "*")]).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        WRITERS - 1,
        "{statuses:?}"
    );
    assert_eq!(revisions(&slug).await.len(), 1);
}

#[tokio::test]
async fn reads_are_cached_and_writes_invalidate_the_cache() {
    let slug = unique("cached-");
    let created = put(&slug, &json!({"title": "v1", "body": "b"}), &[]).await;
    assert_eq!(created.status(), 201);
    let timing = |r: &reqwest::Response| r.headers()["server-timing"].to_str().unwrap().to_owned();

    let first = http().get(page_url(&slug)).send().await.unwrap();
    assert!(
        timing(&first).contains("cache;desc=\"miss\""),
        "{}",
        timing(&first)
    );
    assert!(timing(&first).contains("db;dur="));
    let second = http().get(page_url(&slug)).send().await.unwrap();
    assert!(
        timing(&second).contains("cache;desc=\"hit\""),
        "{}",
        timing(&second)
    );
    assert!(
        !timing(&second).contains("db;dur="),
        "a hit does not touch TiDB"
    );
    assert_eq!(etag(&first), etag(&second));

    let updated = put(&slug, &json!({"title": "v2", "body": "b"}), &[]).await;
    assert_eq!(updated.status(), 200);
    let after: reqwest::Response = http().get(page_url(&slug)).send().await.unwrap();
    assert!(
        timing(&after).contains("cache;desc=\"miss\""),
        "{}",
        timing(&after)
    );
    let page: Value = after.json().await.unwrap();
    assert_eq!(page["title"], "v2", "the write left no stale entry");
}

/// What a write whose invalidation Redis missed leaves once its own tries
/// have run out (an outage longer than them): the new title in TiDB, the
/// old copy in Redis, and the page noted in `page_cache_pending`. This
/// isolate never saw the failure, like every isolate but the writer's: it
/// serves the old copy until the cron's next run sends the invalidation
/// and removes the note.
#[tokio::test]
async fn the_cron_sends_an_invalidation_redis_missed_and_forgets_it() {
    let slug = unique("missed-");
    let url = page_url(&slug);
    let created = put(&slug, &json!({"title": "v1", "body": "b"}), &[]).await;
    assert_eq!(created.status(), 201);
    missed_then_hit(&url, "v1").await;

    let mut db = database().await;
    sqlx::query("UPDATE pages SET title = 'v2' WHERE slug = ?")
        .bind(&slug)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO page_cache_pending (slug, note, noted_at) VALUES (?, 7, UTC_TIMESTAMP(3))",
    )
    .bind(&slug)
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(
        title_and_cache(&url).await,
        (200, json!("v1"), "hit".into()),
        "the old copy, until the cron runs"
    );

    run_cron().await;
    assert_eq!(missed_invalidations(&slug).await, Vec::<i64>::new());
    missed_then_hit(&url, "v2").await;
}

/// Two reads of the page at `url`, both titled `title`: a cache miss that
/// fills the cache, then a hit.
async fn missed_then_hit(url: &str, title: &str) {
    for cache in ["miss", "hit"] {
        assert_eq!(
            title_and_cache(url).await,
            (200, json!(title), cache.into())
        );
    }
}

#[tokio::test]
async fn too_many_writes_from_one_client_get_429_with_rate_limit_fields() {
    // A client address of its own, forwarded by the Pages shim's binding.
    let secret = &e2e::stack().api.as_ref().unwrap().binding_secret;
    let id = unique("");
    let address = format!("2001:db8:{}:{}::1", &id[..4], &id[4..8]);
    // From a browser on the site: the refusal must be readable there.
    let origin = &e2e::stack().api.as_ref().unwrap().allowed_origins[0];
    let send = || {
        http()
            .put(page_url("rate-limited"))
            .header("x-api-binding-token", secret)
            .header("x-api-client-ip", &address)
            .header("origin", origin)
            .json(&json!({"title": "t", "body": "b"}))
            .send()
    };
    let first = send().await.unwrap();
    let limit: u32 = first.headers()["ratelimit-limit"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first.status(), 401, "counted even though unauthenticated");
    // Spend the allowance a few dozen at a time until the limiter refuses;
    // the allowance refills while we send, so count rather than predict.
    let mut allowed: u32 = 1;
    let refused = loop {
        assert!(allowed <= 2 * limit, "no 429 after {allowed} writes");
        let responses = futures::future::join_all((0..40).map(|_| send())).await;
        let mut refused = None;
        for response in responses {
            let response = response.unwrap();
            match response.status().as_u16() {
                401 => allowed += 1,
                429 => refused = Some(response),
                other => panic!("unexpected {other}"),
            }
        }
        if let Some(response) = refused {
            break response;
        }
    };
    assert!(
        allowed >= limit,
        "only {allowed} of a burst of {limit} allowed"
    );
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The limiter answers before the routes and their CORS layer.
    assert_eq!(refused.headers()["access-control-allow-origin"], origin);
    let exposed = refused.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("retry-after") && exposed.contains("ratelimit-remaining"),
        "{exposed}"
    );
    problem(refused, 429, "/problems/rate-limited").await;

    // Another client is not affected.
    let other = http()
        .put(page_url("rate-limited"))
        .header("x-api-binding-token", secret)
        .header("x-api-client-ip", "2001:db8:ffff:1::1")
        .json(&json!({"title": "t", "body": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
}
