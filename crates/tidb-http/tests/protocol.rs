//! The driver against a fake `Fetch` that records each request and answers
//! with canned responses shaped like the SQL API's (the shapes
//! serverless-js's `src/index.ts` reads and its integration tests show).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbound::{Background, BoxFuture, Bytes, Fetch, FetchError, Request, Response};
use serde::Deserialize;
use tidb_http::{
    Cell, Client, Config, ErrorCode, ErrorKind, IsolationLevel, Statement, Value, DEFAULT_TIMEOUT,
};

#[derive(Default)]
struct FakeFetch {
    requests: Mutex<Vec<(Request, Duration)>>,
    answers: Mutex<VecDeque<Result<Response, FetchError>>>,
}

impl FakeFetch {
    fn answer(&self, status: u16, session: Option<&str>, body: &str) {
        let mut response = http::Response::builder().status(status);
        if let Some(session) = session {
            response = response.header("TiDB-Session", session);
        }
        let response = response.body(Bytes::from(body.to_owned())).unwrap();
        self.answers.lock().unwrap().push_back(Ok(response));
    }

    fn fail(&self, error: FetchError) {
        self.answers.lock().unwrap().push_back(Err(error));
    }

    fn request(&self, index: usize) -> (Request, Duration) {
        self.requests.lock().unwrap()[index].clone()
    }
}

impl Fetch for FakeFetch {
    fn fetch(
        &self,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        self.requests.lock().unwrap().push((request, timeout));
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("the test queued an answer for every request");
        Box::pin(async move { answer })
    }
}

const PASSWORD: &str = "s3cr3t:pa$$";

fn client() -> (Client, Arc<FakeFetch>) {
    let fake = Arc::new(FakeFetch::default());
    let config = Config::new("gateway01.example.com", "2x.root", PASSWORD).with_database("app");
    (Client::new(config, fake.clone()), fake)
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).map(|v| v.to_str().unwrap())
}

fn body(request: &Request) -> serde_json::Value {
    serde_json::from_slice(request.body()).unwrap()
}

/// serverless-js's integration test `basic.test.ts` 'option': the
/// employee table read back with its type names.
const EMPLOYEE: &str = r#"{"types":[{"name":"emp_no","type":"INT","nullable":true},
    {"name":"first_name","type":"VARCHAR","nullable":true},
    {"name":"last_name","type":"VARCHAR","nullable":true}],
    "rows":[["0","base","base"]]}"#;

#[tokio::test]
async fn a_statement_is_one_post_with_serverless_js_headers_and_body() {
    let (db, fake) = client();
    fake.answer(200, Some("sess-1"), EMPLOYEE);
    db.execute(
        Statement::new("select * from employee where first_name = ? and emp_no = ?")
            .bind("O'Brien")
            .bind(0),
    )
    .await
    .unwrap();

    let (request, timeout) = fake.request(0);
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri(),
        "https://http-gateway01.example.com/v1beta/sql"
    );
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    // base64("2x.root:s3cr3t:pa$$")
    assert_eq!(
        header(&request, "authorization"),
        Some("Basic Mngucm9vdDpzM2NyM3Q6cGEkJA==")
    );
    assert_eq!(header(&request, "tidb-database"), Some("app"));
    assert_eq!(header(&request, "tidb-session"), Some(""));
    assert_eq!(header(&request, "accept-encoding"), Some("gzip"));
    assert_eq!(header(&request, "x-debug-trace-id").map(str::len), Some(34));
    assert!(header(&request, "user-agent")
        .unwrap()
        .starts_with("tidb-http/"));
    assert_eq!(header(&request, "tidb-isolation-level"), None);
    assert_eq!(header(&request, "tidb-stateful-action"), None);
    assert_eq!(
        request.body().as_ref(),
        br#"{"query":"select * from employee where first_name = 'O\\'Brien' and emp_no = 0"}"#
    );
    assert_eq!(timeout, DEFAULT_TIMEOUT);
}

#[tokio::test]
async fn rows_decode_by_type_into_structs_tuples_and_cells() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Employee {
        emp_no: i32,
        first_name: String,
        last_name: String,
    }
    let (db, fake) = client();
    fake.answer(200, Some("s"), EMPLOYEE);
    fake.answer(200, Some("s"), EMPLOYEE);
    fake.answer(200, Some("s"), EMPLOYEE);

    let rows: Vec<Employee> = db.query_as("select * from employee").await.unwrap();
    assert_eq!(
        rows,
        vec![Employee {
            emp_no: 0,
            first_name: "base".into(),
            last_name: "base".into()
        }]
    );
    let tuple: (i64, String, String) = db.query_one_as("select * from employee").await.unwrap();
    assert_eq!(tuple, (0, "base".into(), "base".into()));

    let result = db.execute("select * from employee").await.unwrap();
    assert_eq!(result.columns()[0].type_name, "INT");
    assert_eq!(result.rows()[0].get("emp_no"), Some(&Cell::Int(0)));
    assert_eq!(result.rows_affected(), None);
    assert_eq!(result.last_insert_id(), None);
}

#[tokio::test]
async fn every_type_of_serverless_js_type_test_decodes() {
    // The row of serverless-js's integration-test/type.test.ts, as the
    // gateway sends it (binary types hex, everything else text).
    let answer = r#"{"types":[
        {"name":"t_tinyint","type":"TINYINT","nullable":true},
        {"name":"t_tinyint_unsigned","type":"UNSIGNED TINYINT","nullable":true},
        {"name":"t_bigint","type":"BIGINT","nullable":true},
        {"name":"t_bigint_unsigned","type":"UNSIGNED BIGINT","nullable":true},
        {"name":"t_boolean","type":"TINYINT","nullable":true},
        {"name":"t_float","type":"FLOAT","nullable":true},
        {"name":"t_decimal","type":"DECIMAL","nullable":true},
        {"name":"t_char","type":"CHAR","nullable":true},
        {"name":"c_binary","type":"BINARY","nullable":true},
        {"name":"t_blob","type":"BLOB","nullable":true},
        {"name":"t_date","type":"DATE","nullable":true},
        {"name":"t_datetime","type":"DATETIME","nullable":true},
        {"name":"t_timestamp","type":"TIMESTAMP","nullable":true},
        {"name":"t_time","type":"TIME","nullable":true},
        {"name":"t_year","type":"YEAR","nullable":true},
        {"name":"t_enum","type":"ENUM","nullable":true},
        {"name":"t_set","type":"SET","nullable":true},
        {"name":"t_bit","type":"BIT","nullable":true},
        {"name":"t_json","type":"JSON","nullable":true},
        {"name":"t_null","type":"VARCHAR","nullable":true}],
      "rows":[["-128","255","-9223372036854775808","18446744073709551615","1","123.46",
        "123456789012.1234567890120000000","测","1520c5","626c6f62","1977-01-01",
        "9999-12-31 23:59:59","1973-12-30 15:30:00","23:59:59","2154","enum2","a,b",
        "0000000000000055","{\"a\": 1, \"b\": \"2\"}",null]]}"#;
    let (db, fake) = client();
    fake.answer(200, Some("s"), answer);
    let result = db.execute("select * from multi_data_type").await.unwrap();
    let cells = result.rows()[0].cells();
    let expected = [
        Cell::Int(-128),
        Cell::Int(255),
        Cell::Int(i64::MIN),
        Cell::UInt(u64::MAX),
        Cell::Int(1),
        Cell::Float(123.46),
        Cell::Decimal("123456789012.1234567890120000000".into()),
        Cell::Text("测".into()),
        Cell::Bytes(vec![0x15, 0x20, 0xc5]),
        Cell::Bytes(b"blob".to_vec()),
        Cell::Date("1977-01-01".parse().unwrap()),
        Cell::DateTime("9999-12-31 23:59:59".parse().unwrap()),
        Cell::DateTime("1973-12-30 15:30:00".parse().unwrap()),
        Cell::Text("23:59:59".into()),
        Cell::Int(2154),
        Cell::Text("enum2".into()),
        Cell::Text("a,b".into()),
        Cell::Bytes(vec![0, 0, 0, 0, 0, 0, 0, 0x55]),
        Cell::Json(serde_json::json!({"a": 1, "b": "2"})),
        Cell::Null,
    ];
    assert_eq!(cells, expected);
}

#[tokio::test]
async fn a_change_reports_rows_affected_and_the_insert_id() {
    let (db, fake) = client();
    fake.answer(
        200,
        Some("s"),
        r#"{"rowsAffected":1,"sLastInsertID":"18446744073709551615"}"#,
    );
    let result = db
        .execute(Statement::new("INSERT INTO t (a) VALUES (:a)").bind_named("a", Value::Null))
        .await
        .unwrap();
    assert_eq!(result.rows_affected(), Some(1));
    assert_eq!(result.last_insert_id(), Some(u64::MAX));
    assert!(result.rows().is_empty());
    assert_eq!(
        body(&fake.request(0).0)["query"],
        "INSERT INTO t (a) VALUES (null)"
    );
}

#[tokio::test]
async fn a_transaction_carries_the_session_from_each_answer_to_the_next_request() {
    let (db, fake) = client();
    fake.answer(200, Some("after-begin"), "{}");
    fake.answer(
        200,
        Some("after-insert"),
        r#"{"rowsAffected":1,"sLastInsertID":"7"}"#,
    );
    fake.answer(200, Some("after-commit"), "{}");

    let mut tx = db.begin(Some(IsolationLevel::ReadCommitted)).await.unwrap();
    assert_eq!(tx.session(), "after-begin");
    let inserted = tx.execute("INSERT INTO t VALUES ()").await.unwrap();
    assert_eq!(inserted.last_insert_id(), Some(7));
    assert_eq!(tx.session(), "after-insert");
    tx.commit().await.unwrap();

    let (begin, _) = fake.request(0);
    assert_eq!(body(&begin), serde_json::json!({"query": "BEGIN"}));
    assert_eq!(header(&begin, "tidb-session"), Some(""));
    assert_eq!(
        header(&begin, "tidb-isolation-level"),
        Some("READ COMMITTED")
    );

    let (insert, _) = fake.request(1);
    assert_eq!(header(&insert, "tidb-session"), Some("after-begin"));
    assert_eq!(header(&insert, "tidb-isolation-level"), None);

    let (commit, _) = fake.request(2);
    assert_eq!(body(&commit), serde_json::json!({"query": "COMMIT"}));
    assert_eq!(header(&commit, "tidb-session"), Some("after-insert"));
}

#[tokio::test]
async fn rollback_and_repeatable_read() {
    let (db, fake) = client();
    fake.answer(200, Some("s1"), "{}");
    fake.answer(200, Some("s2"), "{}");
    let tx = db
        .begin(Some(IsolationLevel::RepeatableRead))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        header(&fake.request(0).0, "tidb-isolation-level"),
        Some("REPEATABLE READ")
    );
    let (rollback, _) = fake.request(1);
    assert_eq!(body(&rollback), serde_json::json!({"query": "ROLLBACK"}));
    assert_eq!(header(&rollback, "tidb-session"), Some("s1"));
}

/// A background that keeps the work it is given, to run when the test
/// says.
fn kept_background() -> (Background, Arc<Mutex<Vec<BoxFuture<'static, ()>>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let keep = kept.clone();
    (
        Background::new(move |work| keep.lock().unwrap().push(work)),
        kept,
    )
}

async fn run_kept(kept: &Mutex<Vec<BoxFuture<'static, ()>>>) -> usize {
    let work: Vec<_> = kept.lock().unwrap().drain(..).collect();
    let count = work.len();
    for work in work {
        work.await;
    }
    count
}

#[tokio::test]
async fn an_abandoned_transaction_is_rolled_back_in_the_background() {
    let (db, fake) = client();
    let (background, kept) = kept_background();
    let db = db.with_background(background);
    fake.answer(200, Some("s1"), "{}");
    fake.answer(200, Some("s2"), r#"{"rowsAffected":1}"#);
    fake.answer(200, Some("done"), "{}");
    let mut tx = db.begin(None).await.unwrap();
    tx.execute("UPDATE t SET x = 1").await.unwrap();
    // The caller gives up (its deadline passed): the future is dropped.
    drop(tx);
    assert_eq!(run_kept(&kept).await, 1);
    let (rollback, timeout) = fake.request(2);
    assert_eq!(body(&rollback), serde_json::json!({"query": "ROLLBACK"}));
    assert_eq!(header(&rollback, "tidb-session"), Some("s2"));
    assert_eq!(timeout, tidb_http::ABANDONED_ROLLBACK_TIMEOUT);
}

#[tokio::test]
async fn a_failed_commit_is_rolled_back_and_a_finished_transaction_is_not() {
    let (db, fake) = client();
    let (background, kept) = kept_background();
    let db = db.with_background(background);

    fake.answer(200, Some("c1"), "{}");
    fake.answer(200, Some("done"), "{}");
    db.begin(None).await.unwrap().commit().await.unwrap();
    fake.answer(200, Some("r1"), "{}");
    fake.answer(200, Some("done"), "{}");
    db.begin(None).await.unwrap().rollback().await.unwrap();
    assert_eq!(run_kept(&kept).await, 0, "nothing left to undo");

    fake.answer(200, Some("f1"), "{}");
    fake.fail(FetchError::Timeout(Duration::from_secs(5)));
    fake.answer(200, Some("done"), "{}");
    let error = db.begin(None).await.unwrap().commit().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(run_kept(&kept).await, 1);
    let (rollback, _) = fake.request(6);
    assert_eq!(body(&rollback), serde_json::json!({"query": "ROLLBACK"}));
    assert_eq!(header(&rollback, "tidb-session"), Some("f1"));
}

/// MySQL's answer to a deadlock's victim: the whole transaction is rolled
/// back, and the session goes on with none, committing each statement on
/// its own.
const DEADLOCK: &str = r#"{"code":1213,"message":"Error 1213 (40001): Deadlock found when trying to get lock; try restarting transaction"}"#;

#[tokio::test]
async fn once_the_database_rolled_a_transaction_back_nothing_more_is_sent_in_it() {
    let (db, fake) = client();
    fake.answer(200, Some("d1"), "{}");
    fake.answer(200, Some("d2"), r#"{"rowsAffected":1}"#);
    fake.answer(400, Some("d3"), DEADLOCK);
    let mut tx = db.begin(None).await.unwrap();
    tx.execute("UPDATE a SET x = 1").await.unwrap();
    let victim = tx.execute("UPDATE b SET y = 2").await.unwrap_err();
    assert!(victim.is_retryable_transaction(), "{victim}");

    // Sent, this insert would commit alone, and the COMMIT would succeed
    // with the first update undone.
    let later = tx.execute("INSERT INTO c VALUES (1)").await.unwrap_err();
    assert_eq!(later, victim, "the error that ended the transaction");
    let committed = tx.commit().await.unwrap_err();
    assert!(committed.is_retryable_transaction(), "{committed}");
    assert_eq!(
        fake.requests.lock().unwrap().len(),
        3,
        "BEGIN and two updates only"
    );

    // A rollback still goes out: it finds nothing to undo.
    fake.answer(200, Some("e1"), "{}");
    fake.answer(400, Some("e2"), DEADLOCK);
    fake.answer(200, Some("done"), "{}");
    let mut tx = db.begin(None).await.unwrap();
    tx.execute("UPDATE a SET x = 1").await.unwrap_err();
    tx.rollback().await.unwrap();
    let (rollback, _) = fake.request(5);
    assert_eq!(body(&rollback), serde_json::json!({"query": "ROLLBACK"}));
    // An error answer hands over no session (serverless-js throws on it
    // too): the rollback goes on the last one handed over.
    assert_eq!(header(&rollback, "tidb-session"), Some("e1"));
}

#[tokio::test]
async fn an_answer_that_does_not_decode_still_hands_over_its_session() {
    let (db, fake) = client();
    fake.answer(200, Some("s1"), "{}");
    // A BIGINT column whose cell is no number.
    fake.answer(
        200,
        Some("s2"),
        r#"{"types":[{"name":"n","type":"BIGINT","nullable":false}],"rows":[["x"]]}"#,
    );
    fake.answer(200, Some("done"), "{}");
    let mut tx = db.begin(None).await.unwrap();
    let error = tx.execute("SELECT n FROM t").await.unwrap_err();
    assert!(
        matches!(error.kind(), tidb_http::ErrorKind::Decode(_)),
        "{error}"
    );
    tx.rollback().await.unwrap();
    let (rollback, _) = fake.request(2);
    assert_eq!(header(&rollback, "tidb-session"), Some("s2"));
}

/// Whether `ended` has resolved, without waiting for it.
fn has_ended(ended: &mut tidb_http::Ended) -> bool {
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(ended).poll(&mut cx).is_ready()
}

#[tokio::test]
async fn a_transaction_has_ended_once_its_commit_or_its_abandoned_rollback_is_done() {
    let (db, fake) = client();
    let (background, kept) = kept_background();
    let db = db.with_background(background);

    fake.answer(200, Some("c1"), "{}");
    fake.answer(200, Some("done"), "{}");
    let mut tx = db.begin(None).await.unwrap();
    let mut ended = tx.ended();
    assert!(!has_ended(&mut ended), "open");
    tx.commit().await.unwrap();
    assert!(has_ended(&mut ended), "committed");

    fake.answer(200, Some("a1"), "{}");
    fake.answer(200, Some("done"), "{}");
    let mut tx = db.begin(None).await.unwrap();
    let mut ended = tx.ended();
    // Its caller was cut off: the rollback is still to be sent.
    drop(tx);
    assert!(!has_ended(&mut ended), "its ROLLBACK not sent yet");
    assert_eq!(run_kept(&kept).await, 1);
    assert!(has_ended(&mut ended), "rolled back on the background");
    let (rollback, _) = fake.request(3);
    assert_eq!(body(&rollback), serde_json::json!({"query": "ROLLBACK"}));
}

#[tokio::test]
async fn without_a_background_an_abandoned_transaction_sends_nothing() {
    let (db, fake) = client();
    fake.answer(200, Some("s1"), "{}");
    drop(db.begin(None).await.unwrap());
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_stateful_session_opens_and_closes_with_the_action_header() {
    let (db, fake) = client();
    fake.answer(200, Some("p1"), "{}");
    fake.answer(200, Some("p2"), "{}");
    fake.answer(200, Some("p3"), "{}");
    let mut session = db.persist().await.unwrap();
    session.execute("SET @x = 1").await.unwrap();
    session.close().await.unwrap();

    let (open, _) = fake.request(0);
    assert_eq!(header(&open, "tidb-stateful-action"), Some("open"));
    assert_eq!(body(&open), serde_json::json!({"query": ""}));
    let (set, _) = fake.request(1);
    assert_eq!(header(&set, "tidb-session"), Some("p1"));
    assert_eq!(header(&set, "tidb-stateful-action"), None);
    let (close, _) = fake.request(2);
    assert_eq!(header(&close, "tidb-session"), Some("p2"));
    assert_eq!(header(&close, "tidb-stateful-action"), Some("close"));
}

#[tokio::test]
async fn an_error_answer_names_the_statement_but_not_its_values_or_the_password() {
    let (db, fake) = client();
    fake.answer(
        400,
        None,
        r#"{"code":1146,"message":"Error 1146 (42S02): Table 'app.nope' doesn't exist"}"#,
    );
    let err = db
        .execute(Statement::new("SELECT * FROM nope WHERE secret = ?").bind("value-42"))
        .await
        .unwrap_err();
    assert_eq!(err.statement(), Some("SELECT * FROM nope WHERE secret = ?"));
    assert_eq!(err.mysql_errno(), Some(1146));
    let database = err.database().unwrap();
    assert_eq!(database.status, 400);
    assert_eq!(database.code, Some(ErrorCode::Number(1146)));
    let shown = format!("{err} {err:?} {db:?}");
    assert!(
        shown.contains("SELECT * FROM nope WHERE secret = ?"),
        "{shown}"
    );
    assert!(shown.contains("1146"), "{shown}");
    assert!(!shown.contains("value-42"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[tokio::test]
async fn transport_failures_and_timeouts_keep_the_statement() {
    let (db, fake) = client();
    fake.fail(FetchError::Timeout(Duration::from_millis(250)));
    let err = db
        .execute(Statement::new("SELECT SLEEP(5)").timeout(Duration::from_millis(250)))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.statement(), Some("SELECT SLEEP(5)"));
    assert_eq!(fake.request(0).1, Duration::from_millis(250));

    fake.fail(FetchError::Network("connection refused".into()));
    let err = db.execute("SELECT 1").await.unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Transport(FetchError::Network(_))
    ));
    assert!(!format!("{err:?}").contains(PASSWORD));
}

#[tokio::test]
async fn answers_that_are_not_the_sql_api_are_protocol_errors() {
    let (db, fake) = client();
    fake.answer(200, None, EMPLOYEE);
    let err = db.execute("SELECT 1").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Protocol(m) if m.contains("TiDB-Session")),
        "{err}"
    );

    fake.answer(200, Some("s"), "<html>hi</html>");
    let err = db.execute("SELECT 1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Protocol(_)), "{err}");

    fake.answer(
        200,
        Some("s"),
        r#"{"types":[{"name":"a","type":"INT","nullable":true}],"rows":[["1","2"]]}"#,
    );
    let err = db.execute("SELECT 1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Protocol(_)), "{err}");
}

#[tokio::test]
async fn a_bad_cell_or_a_wrong_field_type_names_the_column() {
    let (db, fake) = client();
    fake.answer(
        200,
        Some("s"),
        r#"{"types":[{"name":"doc","type":"JSON","nullable":true}],"rows":[["{not json"]]}"#,
    );
    let err = db.execute("SELECT doc FROM t").await.unwrap_err();
    let ErrorKind::Decode(decode) = err.kind() else {
        panic!("{err}")
    };
    assert_eq!(decode.column(), Some("doc"));
    assert_eq!(err.statement(), Some("SELECT doc FROM t"));

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        first_name: u32,
    }
    fake.answer(200, Some("s"), EMPLOYEE);
    let err = db
        .query_as::<Wrong>("select * from employee")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("column `first_name`"), "{err}");
}

#[tokio::test]
async fn query_one_as_without_rows_and_optional() {
    let (db, fake) = client();
    let empty = r#"{"types":[{"name":"a","type":"INT","nullable":true}],"rows":[]}"#;
    fake.answer(200, Some("s"), empty);
    fake.answer(200, Some("s"), empty);
    let err = db.query_one_as::<i64>("SELECT a FROM t").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NoRows));
    assert_eq!(
        db.query_optional_as::<i64>("SELECT a FROM t")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn binding_errors_are_reported_before_anything_is_sent() {
    let (db, fake) = client();
    let err = db
        .execute(Statement::new("SELECT ?, :a").bind(1).bind_named("a", 2))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Bind(_)));
    let err = db
        .execute(Statement::new("SELECT ?").bind(f64::NAN))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Bind(_)));
    assert!(fake.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_database_name_that_is_no_header_value_fails_without_the_password() {
    let fake = Arc::new(FakeFetch::default());
    let config = Config::new("h", "u", PASSWORD).with_database("bad\nname");
    let db = Client::new(config, fake.clone());
    let err = db.execute("SELECT 1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config(_)), "{err}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
    assert!(fake.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_local_endpoint_and_a_custom_trace_id_are_used() {
    let fake = Arc::new(FakeFetch::default());
    let config = Config::from_url("mysql://u:p@ignored/db")
        .unwrap()
        .with_endpoint("http://127.0.0.1:4000")
        .unwrap()
        .with_timeout(Duration::from_secs(3));
    let db = Client::new(config, fake.clone()).with_trace_ids(Arc::new(|| "trace-1".into()));
    fake.answer(200, Some("s"), "{}");
    db.execute("SELECT 1").await.unwrap();
    let (request, timeout) = fake.request(0);
    assert_eq!(request.uri(), "http://127.0.0.1:4000/v1beta/sql");
    assert_eq!(header(&request, "x-debug-trace-id"), Some("trace-1"));
    assert_eq!(header(&request, "tidb-database"), Some("db"));
    assert_eq!(timeout, Duration::from_secs(3));
}

/// axum handlers must be `Send`, so every future the driver returns is.
#[test]
fn the_driver_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (db, _) = client();
    let execute = db.execute("SELECT 1");
    assert_send(&execute);
    let rows = db.query_as::<(i64,)>("SELECT 1");
    assert_send(&rows);
    let begin = db.begin(None);
    assert_send(&begin);
    let persist = db.persist();
    assert_send(&persist);
    fn tx_futures(tx: &mut tidb_http::Tx) {
        let execute = tx.execute("SELECT 1");
        assert_send(&execute);
    }
    let _ = tx_futures;
}
