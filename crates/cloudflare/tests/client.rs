//! Behaviour of the generic client: envelopes, typed errors, pagination,
//! retries, timeouts, the request budget, accounting and redaction.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudflare::{Error, Request, RequestBudget, RetryPolicy};
use common::{MockServer, Reply, TOKEN};
use serde_json::{json, Value};

#[tokio::test]
async fn success_envelope_yields_the_result_and_sends_bearer_auth() {
    let server =
        MockServer::start(|_, _| Reply::ok(json!({"id": "z1", "name": "example.com"}))).await;
    let (client, _) = server.client();
    let zone: Value = client.get("/zones/z1").await.unwrap();
    assert_eq!(zone["name"], "example.com");
    let requests = server.requests();
    assert_eq!(requests[0].path, "/zones/z1");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn error_envelope_becomes_a_typed_api_error() {
    // Status 400, not 404: `is_not_found` must come from the code alone.
    let server =
        MockServer::start(|_, _| Reply::error(400, 10007, "workers.api.error.script_not_found"))
            .await;
    let (client, _) = server.client();
    let error = client
        .get::<Value>("/accounts/a/workers/scripts/x")
        .await
        .unwrap_err();
    match &error {
        Error::Api { status, errors } => {
            assert_eq!(*status, 400);
            assert_eq!(errors[0].code, 10007);
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(error.is_not_found());
    assert!(!error.is_already_exists());
    assert!(error.to_string().contains("10007"));
}

#[tokio::test]
async fn success_false_with_http_200_is_still_an_error() {
    let server = MockServer::start(|_, _| {
        Reply::json(200, json!({"success": false, "errors": [{"code": 81057, "message": "Record already exists."}], "messages": [], "result": null}))
    })
    .await;
    let (client, _) = server.client();
    let error = client
        .post::<_, Value>("/zones/z/dns_records", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(200));
    assert!(error.is_already_exists());
    assert!(error.has_code(81057));
}

#[tokio::test]
async fn typed_error_helpers_know_the_codes() {
    let api = |status, code| Error::Api {
        status,
        errors: vec![cloudflare::ApiError {
            code,
            message: String::new(),
            documentation_url: None,
        }],
    };
    // (code, is_not_found, is_already_exists) with status 400, so only the
    // code decides.
    let expected = [
        // Routing failures (a wrong account or zone id), not absence.
        (7000, false, false),
        (7003, false, false),
        (10007, true, false),
        (8000007, true, false),
        (81044, true, false),
        (81053, false, true),
        (81054, false, true),
        (81057, false, true),
        (81058, false, true),
        (8000002, false, true),
        (1, false, false),
        (9109, false, false),
        (10000, false, false),
        (81045, false, false),
        (8000000, false, false),
    ];
    for (code, not_found, already_exists) in expected {
        let error = api(400, code);
        assert_eq!(
            (error.is_not_found(), error.is_already_exists()),
            (not_found, already_exists),
            "{code}"
        );
    }
    // The status alone also decides.
    assert!(api(404, 1).is_not_found());
    assert!(!api(404, 1).is_already_exists());
    assert!(api(409, 1).is_already_exists());
    assert!(!api(409, 1).is_not_found());
    assert!(api(403, 9109).is_unauthorized());
    assert!(api(429, 1).is_rate_limited());
    // A routing code outweighs the status: a 404 "No route" is no absence.
    assert!(api(400, 7003).is_unroutable());
    assert!(api(404, 7000).is_unroutable());
    assert!(!api(404, 7000).is_not_found());
    assert!(!api(404, 10007).is_unroutable());
}

#[tokio::test]
async fn a_routing_failure_is_its_own_error_naming_the_request() {
    // What Cloudflare answers for a Worker read under a wrong account_id.
    let server = MockServer::start(|_, _| {
        Reply::error(
            400,
            7003,
            "Could not route to /accounts/wrong/workers/scripts/api/deployments, perhaps your object identifier is invalid?",
        )
    })
    .await;
    let (client, _) = server.client();
    let error = client
        .get::<Value>("/accounts/wrong/workers/scripts/api/deployments")
        .await
        .unwrap_err();
    match &error {
        Error::Unroutable {
            method,
            path,
            status,
            errors,
        } => {
            assert_eq!(method, "GET");
            assert_eq!(path, "/accounts/wrong/workers/scripts/api/deployments");
            assert_eq!(*status, 400);
            assert_eq!(errors[0].code, 7003);
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    assert!(error.is_unroutable());
    assert!(!error.is_not_found());
    assert_eq!(error.status(), Some(400));
    assert!(error.has_code(7003));
    let message = error.to_string();
    assert!(
        message.contains("could not route GET /accounts/wrong/workers/scripts/api/deployments")
            && message.contains("check the account_id and zone"),
        "{message}"
    );
    // Not retried: the same request would be routed no better.
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn html_5xx_body_is_reported_without_the_token() {
    // The edge answers HTML; this one even echoes the token back.
    let server = MockServer::start(|_, _| {
        Reply::html(
            502,
            &format!("<html><body>Bad gateway {TOKEN}</body></html>"),
        )
    })
    .await;
    let (client, _) = server.client_with(|c| c.retry(RetryPolicy::none()));
    let error = client.get::<Value>("/zones").await.unwrap_err();
    match &error {
        Error::UnexpectedBody {
            status,
            content_type,
            snippet,
        } => {
            assert_eq!(*status, 502);
            assert_eq!(content_type, "text/html");
            assert!(snippet.contains("Bad gateway"));
        }
        other => panic!("expected UnexpectedBody, got {other:?}"),
    }
    assert!(error.is_server_error());
    assert!(!error.to_string().contains(TOKEN));
    assert!(!format!("{error:?}").contains(TOKEN));
}

#[tokio::test]
async fn malformed_success_result_is_a_decode_error() {
    let server = MockServer::start(|_, _| Reply::ok(json!({"id": 5}))).await;
    let (client, _) = server.client();
    let error = client.tokens().verify().await.unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
}

#[tokio::test]
async fn token_and_secrets_never_appear_in_debug_output() {
    let server = MockServer::start(|_, _| Reply::ok(json!(null))).await;
    let (client, _) = server.client();
    assert!(!format!("{client:?}").contains(TOKEN));
    assert!(!format!("{:?}", client.config()).contains(TOKEN));
    let binding = cloudflare::workers::WorkerBinding::secret_text("KEY", "s3cr3t-value");
    assert!(!format!("{binding:?}").contains("s3cr3t-value"));
    let env = cloudflare::pages::EnvVar::secret("s3cr3t-value");
    assert!(!format!("{env:?}").contains("s3cr3t-value"));
    // ...but they are sent.
    assert!(serde_json::to_string(&binding)
        .unwrap()
        .contains("s3cr3t-value"));
}

#[tokio::test]
async fn page_pagination_collects_three_pages() {
    let server = MockServer::start(|request, _| {
        let page: u64 = request.query("page").unwrap().parse().unwrap();
        Reply::page(
            json!([{"n": page * 10}, {"n": page * 10 + 1}]),
            json!({"page": page, "per_page": 2, "count": 2, "total_count": 6, "total_pages": 3}),
        )
    })
    .await;
    let (client, _) = server.client();
    let items: Vec<Value> = client
        .get_all_pages(Request::get("/zones"), 2)
        .await
        .unwrap();
    let ns: Vec<u64> = items.iter().map(|v| v["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, [10, 11, 20, 21, 30, 31]);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].query("page"), Some("3"));
    assert_eq!(requests[2].query("per_page"), Some("2"));
}

#[tokio::test]
async fn page_pagination_without_total_pages_stops_at_a_short_page() {
    let server = MockServer::start(|request, _| {
        let page: u64 = request.query("page").unwrap().parse().unwrap();
        let items = if page < 3 { json!([1, 2]) } else { json!([3]) };
        Reply::page(items, json!({"page": page}))
    })
    .await;
    let (client, _) = server.client();
    let items: Vec<u64> = client.get_all_pages(Request::get("/x"), 2).await.unwrap();
    assert_eq!(items, [1, 2, 1, 2, 3]);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn rate_limit_is_retried_after_the_retry_after_seconds() {
    let server = MockServer::start(|_, n| {
        if n == 0 {
            Reply::error(429, 971, "rate limited").header("retry-after", "7")
        } else {
            Reply::ok(json!("done"))
        }
    })
    .await;
    let (client, clock) = server.client();
    // A POST: 429 means nothing was done, so even creates are retried.
    let result: String = client
        .post("/zones/z/dns_records", &json!({}))
        .await
        .unwrap();
    assert_eq!(result, "done");
    assert_eq!(clock.sleeps(), [Duration::from_secs(7)]);
    let stats = client.stats();
    assert_eq!((stats.requests, stats.retries, stats.writes), (2, 1, 2));
    // The same call twice: the 429 was answered to the first.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests
        .iter()
        .all(|r| r.method == "POST" && r.path == "/zones/z/dns_records"));
}

#[tokio::test]
async fn rate_limit_retry_after_http_date_is_honoured() {
    let server_clock = cloudflare::VirtualClock::new();
    let server_now = cloudflare::Clock::system_now(&server_clock);
    let date = httpdate::fmt_http_date(server_now + Duration::from_secs(30));
    let server = MockServer::start(move |_, n| {
        if n == 0 {
            Reply::error(429, 971, "rate limited").header("retry-after", &date)
        } else {
            Reply::ok(json!(1))
        }
    })
    .await;
    let (client, clock) = server.client();
    let _: u32 = client.get("/x").await.unwrap();
    let slept = clock.sleeps()[0];
    // HTTP dates have one-second resolution.
    assert!(
        slept >= Duration::from_secs(28) && slept <= Duration::from_secs(30),
        "{slept:?}"
    );
}

#[tokio::test]
async fn service_unavailable_is_retried_with_backoff_then_succeeds() {
    let server = MockServer::start(|_, n| {
        if n < 2 {
            Reply::html(503, "<html>try later</html>")
        } else {
            Reply::ok(json!({"ok": true}))
        }
    })
    .await;
    let (client, clock) = server.client();
    let result: Value = client.get("/zones").await.unwrap();
    assert_eq!(result["ok"], true);
    // No jitter in tests: 100 ms, then 200 ms.
    assert_eq!(
        clock.sleeps(),
        [Duration::from_millis(100), Duration::from_millis(200)]
    );
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn creating_post_is_not_retried_after_a_server_error() {
    let server = MockServer::start(|_, _| Reply::error(500, 10013, "internal error")).await;
    let (client, clock) = server.client();
    let error = client
        .post::<_, Value>("/zones/z/dns_records", &json!({"name": "a"}))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn post_marked_idempotent_is_retried_after_a_server_error() {
    let server = MockServer::start(|_, n| {
        if n == 0 {
            Reply::error(500, 10013, "internal error")
        } else {
            Reply::ok(json!({"id": "d1"}))
        }
    })
    .await;
    let (client, _) = server.client();
    let request = Request::post("/accounts/a/workers/scripts/s/deployments")
        .json(&json!({}))
        .unwrap()
        .idempotent(true);
    let result: Value = client.send(request).await.unwrap();
    assert_eq!(result["id"], "d1");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn retries_resend_the_same_json_body_and_credentials() {
    let server = MockServer::start(|_, n| {
        if n == 0 {
            Reply::error(503, 1, "unavailable")
        } else {
            Reply::ok(json!({"id": "r1"}))
        }
    })
    .await;
    let (client, _) = server.client();
    let body = json!({"type": "A", "name": "a.example.com", "content": "192.0.2.1", "ttl": 1});
    let _: Value = client.put("/zones/z/dns_records/r1", &body).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.json(), body);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn exhausted_attempts_return_the_last_error() {
    let server = MockServer::start(|_, n| Reply::error(503, 1000 + n as u64, "unavailable")).await;
    let (client, clock) = server.client();
    let error = client.get::<Value>("/zones").await.unwrap_err();
    // Four attempts; the error is the fourth one's.
    assert_eq!(server.requests().len(), 4);
    assert_eq!(error.codes(), [1003]);
    assert_eq!(clock.sleeps().len(), 3);
}

#[tokio::test]
async fn total_delay_cap_stops_retrying_early() {
    let server = MockServer::start(|_, _| {
        Reply::error(429, 971, "rate limited").header("retry-after", "40")
    })
    .await;
    let (client, clock) = server.client(); // max_total_delay 60 s
    let error = client.get::<Value>("/zones").await.unwrap_err();
    assert!(error.is_rate_limited());
    assert_eq!(server.requests().len(), 2);
    assert_eq!(clock.sleeps(), [Duration::from_secs(40)]);
}

/// A client whose retry budget has room for a full rate-limit lockout, and
/// whose wait announcements are collected instead of printed.
fn lockout_client(
    server: &MockServer,
    max_retry_after: Duration,
) -> (
    cloudflare::Client,
    cloudflare::VirtualClock,
    Arc<Mutex<Vec<String>>>,
) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let (client, clock) = server.client_with(|c| {
        let retry = RetryPolicy {
            max_total_delay: Duration::from_secs(420),
            max_retry_after,
            ..c.retry.clone()
        };
        c.retry(retry)
            .on_wait(move |line| sink.lock().unwrap().push(line.to_string()))
    });
    (client, clock, notices)
}

#[tokio::test]
async fn a_full_rate_limit_lockout_is_waited_out_and_announced() {
    let server = MockServer::start(|_, n| {
        if n == 0 {
            Reply::error(429, 971, "rate limited").header("retry-after", "300")
        } else {
            Reply::ok(json!("done"))
        }
    })
    .await;
    // The virtual clock makes the five minutes free.
    let (client, clock, notices) = lockout_client(&server, cloudflare::RATE_LIMIT_LOCKOUT);
    let result: String = client.get("/zones").await.unwrap();
    assert_eq!(result, "done");
    assert_eq!(clock.sleeps(), [Duration::from_secs(300)]);
    let notices = notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("waiting 300s") && notices[0].contains("GET /zones"),
        "{notices:?}"
    );
}

#[tokio::test]
async fn the_default_policy_honours_the_documented_lockout() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_retry_after, Duration::from_secs(300));
    assert!(policy.max_total_delay >= policy.max_retry_after);
}

#[tokio::test]
async fn a_retry_after_beyond_the_maximum_fails_at_once_naming_the_wait() {
    let server =
        MockServer::start(|_, _| Reply::error(429, 971, "rate limited").header("retry-after", "6"))
            .await;
    // An injected 5 s maximum keeps the test's waits short.
    let (client, clock, notices) = lockout_client(&server, Duration::from_secs(5));
    let error = client.get::<Value>("/zones").await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::RetryAfterTooLong { asked, allowed, .. }
                if asked == Duration::from_secs(6) && allowed == Duration::from_secs(5)
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("6s") && message.contains("GET /zones"),
        "{message}"
    );
    // Still a rate-limit answer to callers that branch on it.
    assert!(error.is_rate_limited());
    assert_eq!(error.codes(), [971]);
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
    assert!(notices.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_absurd_retry_after_fails_at_once() {
    let server = MockServer::start(|_, _| {
        Reply::error(429, 971, "rate limited").header("retry-after", "100000000000000000000")
    })
    .await;
    let (client, clock, _) = lockout_client(&server, cloudflare::RATE_LIMIT_LOCKOUT);
    let error = client.get::<Value>("/zones").await.unwrap_err();
    assert!(
        matches!(error, Error::RetryAfterTooLong { asked, .. } if asked > Duration::from_secs(300)),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn timeouts_are_retried_for_reads_and_reported() {
    let server = MockServer::start(|_, n| {
        if n == 0 {
            Reply::ok(json!("slow")).delayed(Duration::from_secs(3))
        } else {
            Reply::ok(json!("fast"))
        }
    })
    .await;
    let (client, _) = server.client_with(|c| c.timeout(Duration::from_millis(200)));
    let result: String = client.get("/zones").await.unwrap();
    assert_eq!(result, "fast");
    let stats = client.stats();
    assert_eq!((stats.requests, stats.retries), (2, 1));
    // The first attempt got no answer in time: "fast" is the second one's.
    assert_eq!(server.requests().len(), 2);

    let slow = MockServer::start(|_, _| Reply::ok(json!(1)).delayed(Duration::from_secs(3))).await;
    let (client, _) = slow.client_with(|c| c.timeout(Duration::from_millis(200)));
    // A creating POST that timed out may have been applied: not retried.
    let error = client
        .post::<_, Value>("/zones/z/dns_records", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(slow.requests().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retried_even_for_posts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let clock = cloudflare::VirtualClock::new();
    let config = cloudflare::ClientConfig::new(TOKEN)
        .base_url(format!("http://{addr}/client/v4"))
        .retry(RetryPolicy {
            max_attempts: 3,
            jitter: false,
            ..RetryPolicy::default()
        })
        .clock(std::sync::Arc::new(clock.clone()));
    let client = cloudflare::Client::new(config).unwrap();
    let error = client
        .post::<_, Value>("/zones/z/dns_records", &json!({}))
        .await
        .unwrap_err();
    match &error {
        Error::Transport { connect, .. } => assert!(connect),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(!error.to_string().contains(TOKEN));
    assert_eq!(client.stats().requests, 3);
    assert_eq!(clock.sleeps().len(), 2);
}

#[tokio::test]
async fn budget_throttles_within_the_sliding_window() {
    let server = MockServer::start(|_, _| Reply::ok(json!(null))).await;
    let (client, clock) = server.client_with(|c| {
        c.budget(RequestBudget {
            max_requests: 3,
            window: Duration::from_secs(10),
            hard_cap: None,
        })
    });
    for _ in 0..7 {
        let _: Value = client.get("/zones").await.unwrap();
    }
    // Requests 4 and 7 each waited for the window to slide by 10 s.
    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(10), Duration::from_secs(10)]
    );
    let stats = client.stats();
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.throttled_for, Duration::from_secs(20));
}

#[tokio::test]
async fn budget_hard_cap_fails_without_sending() {
    let server = MockServer::start(|_, _| Reply::ok(json!(null))).await;
    let (client, _) = server.client_with(|c| {
        c.budget(RequestBudget {
            hard_cap: Some(2),
            ..RequestBudget::default()
        })
    });
    let _: Value = client.get("/a").await.unwrap();
    let _: Value = client.get("/b").await.unwrap();
    let error = client.get::<Value>("/c").await.unwrap_err();
    assert!(
        matches!(error, Error::BudgetExhausted { cap: 2 }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn retries_count_against_the_budget() {
    let server = MockServer::start(|_, n| {
        if n == 0 {
            Reply::error(503, 1, "unavailable")
        } else {
            Reply::ok(json!(null))
        }
    })
    .await;
    let (client, _) = server.client_with(|c| {
        c.budget(RequestBudget {
            hard_cap: Some(2),
            ..RequestBudget::default()
        })
    });
    let _: Value = client.get("/a").await.unwrap();
    assert!(matches!(
        client.get::<Value>("/b").await,
        Err(Error::BudgetExhausted { .. })
    ));
}

#[tokio::test]
async fn accounting_counts_requests_and_writes() {
    let server = MockServer::start(|_, _| Reply::ok(json!({"id": "x"}))).await;
    let (client, _) = server.client();
    let _: Value = client.get("/zones").await.unwrap();
    let _: Value = client.get("/zones/z/dns_records").await.unwrap();
    assert_eq!(client.stats().writes, 0, "reads only: a no-op deploy");
    let _: Value = client
        .put("/zones/z/dns_records/x", &json!({}))
        .await
        .unwrap();
    client.delete("/zones/z/dns_records/x").await.unwrap();
    let stats = client.stats();
    assert_eq!((stats.requests, stats.writes, stats.retries), (4, 2, 0));
    let sent: Vec<(String, String)> = server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let sent: Vec<(&str, &str)> = sent.iter().map(|(m, p)| (m.as_str(), p.as_str())).collect();
    assert_eq!(
        sent,
        [
            ("GET", "/zones"),
            ("GET", "/zones/z/dns_records"),
            ("PUT", "/zones/z/dns_records/x"),
            ("DELETE", "/zones/z/dns_records/x")
        ]
    );
    client.reset_stats();
    assert_eq!(client.stats(), cloudflare::CallStats::default());
}

#[tokio::test]
async fn clones_share_accounting() {
    let server = MockServer::start(|_, _| Reply::ok(json!(null))).await;
    let (client, _) = server.client();
    let clone = client.clone();
    let _: Value = clone.get("/zones").await.unwrap();
    assert_eq!(client.stats().requests, 1);
}
