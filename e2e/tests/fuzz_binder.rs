//! Property test ("fuzzing") of parameter binding end to end: arbitrary
//! values bound into an `INSERT` by the TiDB HTTP driver, sent through the
//! gateway (`tidb-gateway`, in-process on a free port, as in `tidb.rs`)
//! into the stack's MariaDB, and read back with a bound `SELECT`, come
//! back equal. A value that broke out of its literal would fail the
//! statement, store something else, or write another row.
//!
//! Every kind of value the driver binds goes in: text, bytes, integers,
//! doubles, booleans, a date, a datetime to the microsecond and a JSON
//! document (into a `JSON` column, which checks it is valid); the row is
//! bound value by value or as one list (`VALUES (?)`), and read back by
//! its key among others in a list (`k IN (:keys)`).
//!
//! 64 cases by default (each is two round trips); run long with
//! `PROPTEST_CASES=5000 cargo xtask test fuzz_`.

use std::sync::Arc;
use std::time::Duration;

use e2e::{stack, unique};
use proptest::prelude::*;
use proptest::test_runner::{contextualize_config, Config as ProptestConfig, TestRunner};
use tidb_gateway::GatewayConfig;
use tidb_http::{Cell, Client, Config, Date, DateTime, Statement, Value};

/// Starts a gateway in `runtime` and returns a client of it.
fn gateway(runtime: &tokio::runtime::Runtime) -> Client {
    let db = &stack().mariadb;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let config = GatewayConfig {
        log_requests: false,
        ..GatewayConfig::new(format!("{}:{}", db.host, db.port))
    };
    runtime.spawn(tidb_gateway::serve(listener, config));
    let config = Config::new("local.invalid", db.user.as_str(), db.password.as_str())
        .with_endpoint(&format!("http://{addr}"))
        .unwrap()
        .with_database(db.database.as_str())
        .with_timeout(Duration::from_secs(20));
    Client::new(config, Arc::new(outbound::ReqwestFetch::default()))
}

/// One row's values.
#[derive(Debug, Clone)]
struct Row {
    text: Option<String>,
    bytes: Vec<u8>,
    int: i64,
    uint: u64,
    double: f64,
    flag: bool,
    date: Date,
    datetime: DateTime,
    json: serde_json::Value,
    /// Bound as one list (`VALUES (?)`) rather than value by value.
    as_list: bool,
    /// Keys no row has, read for beside the row's own.
    other_keys: Vec<i64>,
}

/// Years MariaDB's `DATE` and `DATETIME` take (it documents 1000 to 9999
/// and stores from 0001 on).
const YEARS: std::ops::RangeInclusive<u16> = 1..=9999;

fn row() -> impl Strategy<Value = Row> {
    (
        (
            prop::option::weighted(0.9, tidb_http::testing::sql_text(32)),
            prop::collection::vec(any::<u8>(), 0..48),
            any::<i64>(),
            any::<u64>(),
            tidb_http::testing::finite_f64(),
            any::<bool>(),
        ),
        (
            tidb_http::testing::date(YEARS),
            tidb_http::testing::datetime(YEARS),
            tidb_http::testing::json_document(12),
        ),
        any::<bool>(),
        prop::collection::vec(i64::MIN..0, 0..4),
    )
        .prop_map(
            |(
                (text, bytes, int, uint, double, flag),
                (date, datetime, json),
                as_list,
                other_keys,
            )| Row {
                text,
                bytes,
                int,
                uint,
                double,
                flag,
                date,
                datetime,
                json,
                as_list,
                other_keys,
            },
        )
}

async fn round_trip(db: &Client, table: &str, key: i64, row: &Row) -> Result<(), TestCaseError> {
    let values: Vec<Value> = vec![
        key.into(),
        row.text.clone().into(),
        row.bytes.clone().into(),
        row.int.into(),
        row.uint.into(),
        row.double.into(),
        row.flag.into(),
        row.date.into(),
        row.datetime.into(),
        row.json.clone().into(),
    ];
    let columns = "k, t_text, t_bytes, t_int, t_uint, t_double, t_flag, t_date, t_datetime, t_json";
    let insert = if row.as_list {
        Statement::new(format!("INSERT INTO {table} ({columns}) VALUES (?)"))
            .bind(Value::List(values))
    } else {
        let placeholders = vec!["?"; values.len()].join(", ");
        values.into_iter().fold(
            Statement::new(format!(
                "INSERT INTO {table} ({columns}) VALUES ({placeholders})"
            )),
            Statement::bind,
        )
    };
    let inserted = db
        .execute(insert)
        .await
        .map_err(|e| TestCaseError::fail(format!("INSERT failed: {e}")))?;
    prop_assert_eq!(inserted.rows_affected(), Some(1));

    // Read back by the text too (named this time), so the comparison
    // happens in the database as well as here; and by the key among keys no
    // row has.
    let mut keys = row.other_keys.clone();
    keys.insert(key as usize % (keys.len() + 1), key);
    let read = db
        .execute(
            Statement::new(format!(
                "SELECT t_text, t_bytes, t_int, t_uint, t_double, t_flag, \
                 t_text <=> :text AS same_text, t_date, t_datetime, t_json \
                 FROM {table} WHERE k IN (:keys)"
            ))
            .bind_named("keys", Value::list(keys))
            .bind_named("text", row.text.clone()),
        )
        .await
        .map_err(|e| TestCaseError::fail(format!("SELECT failed: {e}")))?;
    prop_assert_eq!(read.rows().len(), 1);
    let cells = read.rows()[0].cells();
    let expected_text = match &row.text {
        Some(t) => Cell::Text(t.clone()),
        None => Cell::Null,
    };
    prop_assert_eq!(&cells[0], &expected_text);
    prop_assert_eq!(&cells[1], &Cell::Bytes(row.bytes.clone()));
    prop_assert_eq!(&cells[2], &Cell::Int(row.int));
    prop_assert!(
        matches!(cells[3], Cell::UInt(u) if u == row.uint)
            || matches!(cells[3], Cell::Int(i) if u64::try_from(i) == Ok(row.uint)),
        "t_uint: {:?} for {}",
        cells[3],
        row.uint
    );
    // DOUBLE keeps every bit of a finite double (-0 is sent as 0).
    prop_assert!(
        matches!(cells[4], Cell::Float(f) if f == row.double),
        "t_double: {:?} for {:e}",
        cells[4],
        row.double
    );
    prop_assert_eq!(&cells[5], &Cell::Int(i64::from(row.flag)));
    prop_assert_eq!(
        &cells[6],
        &Cell::Int(1),
        "the database compares the text equal too"
    );
    prop_assert_eq!(&cells[7], &Cell::Date(row.date));
    prop_assert_eq!(&cells[8], &Cell::DateTime(row.datetime));
    prop_assert_eq!(&cells[9], &Cell::Json(row.json.clone()));
    Ok(())
}

#[test]
fn fuzz_bound_values_round_trip_through_the_gateway_into_mariadb() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = gateway(&runtime);
    let table = unique("fuzz_binder_");
    // utf8mb4_bin spelled out, as TiDB's default and the stack's session.
    runtime
        .block_on(db.execute(format!(
            "CREATE TABLE {table} (k BIGINT NOT NULL PRIMARY KEY, t_text LONGTEXT NULL, \
             t_bytes LONGBLOB NOT NULL, t_int BIGINT NOT NULL, \
             t_uint BIGINT UNSIGNED NOT NULL, t_double DOUBLE NOT NULL, \
             t_flag BOOLEAN NOT NULL, t_date DATE NOT NULL, \
             t_datetime DATETIME(6) NOT NULL, t_json JSON NOT NULL) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
        )))
        .unwrap();

    let mut runner = TestRunner::new(contextualize_config(ProptestConfig {
        // The persistence file needs a `lib.rs` path that an e2e test has
        // not; a failure prints its minimal input instead.
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    }));
    let key = std::cell::Cell::new(0);
    let result = runner.run(&row(), |row| {
        key.set(key.get() + 1);
        runtime.block_on(round_trip(&db, &table, key.get(), &row))
    });

    let rows: i64 = runtime
        .block_on(db.query_one_as(format!("SELECT COUNT(*) FROM {table}")))
        .unwrap();
    runtime
        .block_on(db.execute(format!("DROP TABLE {table}")))
        .unwrap();
    result.unwrap();
    assert_eq!(rows, key.get(), "one row per statement, nothing more");
}
