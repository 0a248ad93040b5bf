//! Every server of the local stack answers a real request from the harness,
//! with the credentials the stack manifest gives (and refuses wrong ones
//! where the production service would).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{http, json, stack, unique};
use futures::{SinkExt, StreamExt};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sqlx::Connection;
use tokio_util::codec::Framed;

#[tokio::test]
async fn mariadb_answers_sql_and_has_the_migrations_table() {
    let mut conn = e2e::database().await;
    let (sum, version): (i64, String) = sqlx::query_as("SELECT 1 + 1, VERSION()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(sum, 2);
    assert!(version.contains("MariaDB"), "{version}");
    // The stack applied migrations/ with sqlx, which keeps its ledger here.
    let ledger: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(ledger, 1);
}

#[tokio::test]
async fn mariadb_refuses_a_wrong_password() {
    let db = &stack().mariadb;
    let url = format!(
        "mysql://{}:wrong@{}:{}/{}",
        db.user, db.host, db.port, db.database
    );
    let err = sqlx::MySqlConnection::connect(&url).await.unwrap_err();
    assert!(err.to_string().contains("Access denied"), "{err}");
}

fn command(parts: &[&str]) -> BytesFrame {
    BytesFrame::Array(
        parts
            .iter()
            .map(|p| BytesFrame::BulkString(p.as_bytes().to_vec().into()))
            .collect(),
    )
}

async fn redis() -> Framed<tokio::net::TcpStream, Resp2> {
    let r = &stack().redis;
    let socket = tokio::net::TcpStream::connect((r.host.as_str(), r.port))
        .await
        .unwrap();
    Framed::new(socket, Resp2::default())
}

async fn ask(conn: &mut Framed<tokio::net::TcpStream, Resp2>, parts: &[&str]) -> BytesFrame {
    conn.send(command(parts)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("redis answered in time")
        .expect("connection open")
        .expect("valid RESP")
}

#[tokio::test]
async fn redis_needs_auth_then_answers() {
    let mut conn = redis().await;
    let refused = ask(&mut conn, &["PING"]).await;
    assert!(
        matches!(refused, BytesFrame::Error(ref e) if e.starts_with("NOAUTH")),
        "{refused:?}"
    );
    let wrong = ask(&mut conn, &["AUTH", "wrong-password"]).await;
    assert!(matches!(wrong, BytesFrame::Error(_)), "{wrong:?}");
    let ok = ask(&mut conn, &["AUTH", &stack().redis.password]).await;
    assert_eq!(ok, BytesFrame::SimpleString("OK".into()));
    assert_eq!(
        ask(&mut conn, &["PING"]).await,
        BytesFrame::SimpleString("PONG".into())
    );
    let key = unique("e2e:");
    assert_eq!(
        ask(&mut conn, &["SET", &key, "v1", "EX", "60"]).await,
        BytesFrame::SimpleString("OK".into())
    );
    assert_eq!(
        ask(&mut conn, &["GET", &key]).await,
        BytesFrame::BulkString("v1".into())
    );
}

fn bucket() -> (Bucket, Credentials) {
    let s3 = &stack().s3;
    let bucket = Bucket::new(
        s3.endpoint.parse().unwrap(),
        UrlStyle::Path,
        s3.bucket.clone(),
        s3.region.clone(),
    )
    .unwrap();
    (
        bucket,
        Credentials::new(&s3.access_key_id, &s3.secret_access_key),
    )
}

#[tokio::test]
async fn s3_takes_signed_put_and_get_and_refuses_bad_signatures() {
    let (bucket, credentials) = bucket();
    let key = unique("e2e/object-");
    let body = format!("hello {key}");
    let expiry = Duration::from_secs(60);

    let put = bucket.put_object(Some(&credentials), &key).sign(expiry);
    let response = http().put(put).body(body.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let get = bucket.get_object(Some(&credentials), &key).sign(expiry);
    let response = http().get(get.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), body);

    // The same URL with one signature character changed.
    let mut tampered = get.clone();
    let pairs: Vec<(String, String)> = get
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" {
                let flipped = if v.starts_with('0') { "1" } else { "0" };
                format!("{flipped}{}", &v[1..])
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(http().get(tampered).send().await.unwrap().status(), 403);

    // A signature made with the wrong secret.
    let wrong = Credentials::new(&stack().s3.access_key_id, "not-the-secret");
    let forged = bucket.get_object(Some(&wrong), &key).sign(expiry);
    assert_eq!(http().get(forged).send().await.unwrap().status(), 403);

    // No signature at all.
    let anonymous = bucket.get_object(None, &key).sign(expiry);
    assert_eq!(http().get(anonymous).send().await.unwrap().status(), 403);
}

/// A Sentry envelope with one event, as an SDK sends it.
fn envelope(event_id: &str, dsn: Option<&str>, message: &str) -> String {
    let header = match dsn {
        Some(dsn) => serde_json::json!({ "event_id": event_id, "dsn": dsn }),
        None => serde_json::json!({ "event_id": event_id }),
    };
    let event = serde_json::json!({
        "event_id": event_id,
        "level": "error",
        "platform": "native",
        "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64(),
        "message": { "formatted": message },
        "exception": { "values": [{ "type": "EndToEndProbe", "value": message }] },
    });
    format!("{header}\n{{\"type\":\"event\"}}\n{event}\n")
}

#[tokio::test]
async fn sentry_accepts_an_envelope_and_gives_it_back_through_its_api() {
    let sentry = &stack().sentry;
    let dsn: url::Url = sentry.dsn.parse().unwrap();
    let key = dsn.username();
    let ingest = format!("{}/api/{}/envelope/", sentry.url, sentry.project_id);
    let event_id = uuid::Uuid::new_v4().simple().to_string();

    let wrong_key = "ffffffffffffffffffffffffffffffff";
    let refused = http()
        .post(&ingest)
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={wrong_key}, sentry_version=7"),
        )
        .body(envelope(&event_id, None, "refused probe"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let accepted = http()
        .post(&ingest)
        .header("content-type", "application/x-sentry-envelope")
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        )
        .body(envelope(&event_id, Some(&sentry.dsn), "end to end probe"))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);

    // Bugsink has no lookup by event id: walk the project's issues.
    let api = format!("{}/api/canonical/0", sentry.url);
    let issues = json(
        http()
            .get(format!("{api}/issues/?project={}", sentry.project_id))
            .bearer_auth(&sentry.api_token),
    )
    .await;
    let mut found = None;
    for issue in issues["results"].as_array().unwrap() {
        let events = json(
            http()
                .get(format!(
                    "{api}/events/?issue={}",
                    issue["id"].as_str().unwrap()
                ))
                .bearer_auth(&sentry.api_token),
        )
        .await;
        for event in events["results"].as_array().unwrap() {
            if event["event_id"].as_str().unwrap().replace('-', "") == event_id {
                found = Some(event["id"].as_str().unwrap().to_owned());
            }
        }
    }
    let id = found.expect("the accepted event is listed by Bugsink's API");
    let event = json(
        http()
            .get(format!("{api}/events/{id}/"))
            .bearer_auth(&sentry.api_token),
    )
    .await;
    assert_eq!(event["data"]["message"]["formatted"], "end to end probe");

    let unauthenticated = http()
        .get(format!("{api}/events/{id}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn prometheus_stores_a_remote_written_sample_for_promql() {
    use prom_remote_write::{
        TimeSeries, WriteRequest, CONTENT_ENCODING, CONTENT_TYPE, VERSION_HEADER,
    };
    let prometheus = &stack().prometheus;
    let run = unique("");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let request = WriteRequest {
        timeseries: vec![
            TimeSeries::new("e2e_probe_value", [("run", run.as_str())]).with_sample(42.5, now_ms)
        ],
    };
    let response = http()
        .post(&prometheus.remote_write_url)
        .header("content-type", CONTENT_TYPE)
        .header("content-encoding", CONTENT_ENCODING)
        .header(VERSION_HEADER.0, VERSION_HEADER.1)
        .body(request.encode_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    let query = format!("e2e_probe_value{{run=\"{run}\"}}");
    let answer = json(
        http()
            .get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", query.as_str())]),
    )
    .await;
    assert_eq!(answer["status"], "success", "{answer}");
    let result = &answer["data"]["result"];
    assert_eq!(result.as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(result[0]["metric"]["run"], run.as_str());
    assert_eq!(result[0]["value"][1], "42.5");

    // A body that is not snappy-compressed protobuf is refused.
    let garbage = http()
        .post(&prometheus.remote_write_url)
        .header("content-type", CONTENT_TYPE)
        .header("content-encoding", CONTENT_ENCODING)
        .body("not a write request")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}

#[tokio::test]
async fn loki_stand_in_takes_a_push_and_gives_the_line_back() {
    let loki = &stack().loki;
    let run = unique("");
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let push = serde_json::json!({
        "streams": [{
            "stream": { "service": "e2e", "run": run },
            "values": [[now_ns, "{\"msg\":\"end to end probe\"}"]],
        }]
    });
    let unauthenticated = http()
        .post(&loki.push_url)
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let response = http()
        .post(&loki.push_url)
        .basic_auth(&loki.user, Some(&loki.password))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let answer = json(
        http()
            .get(format!("{}/loki/api/v1/query_range", loki.url))
            .basic_auth(&loki.user, Some(&loki.password))
            .query(&[("query", format!("{{run=\"{run}\"}}"))]),
    )
    .await;
    let values = &answer["data"]["result"][0]["values"];
    assert_eq!(values[0][0], now_ns.as_str());
    assert_eq!(values[0][1], "{\"msg\":\"end to end probe\"}");
}
