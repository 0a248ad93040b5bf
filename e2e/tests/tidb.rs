//! The TiDB HTTP driver (`tidb-http`) against the local gateway
//! (`tidb-gateway`) in front of the stack's MariaDB: each test starts the
//! gateway in-process on a free port and drives it over real HTTP
//! (`outbound::ReqwestFetch`), so binding, the wire format, decoding,
//! sessions and errors are checked end to end on a real database.

use std::sync::Arc;
use std::time::Duration;

use e2e::{eventually, stack, unique};
use serde::Deserialize;
use tidb_gateway::GatewayConfig;
use tidb_http::{
    Cell, Client, Config, Date, DateTime, ErrorKind, IsolationLevel, Statement, Value,
};

/// Starts a gateway whose sessions time out after `session_timeout` and
/// returns a client logged in as the stack's database user.
async fn gateway(session_timeout: Duration) -> Client {
    let endpoint = start_gateway(session_timeout).await;
    client(&endpoint, &stack().mariadb.password)
}

/// Starts a gateway in this test's runtime; gives its base URL.
async fn start_gateway(session_timeout: Duration) -> String {
    let db = &stack().mariadb;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = GatewayConfig {
        session_timeout,
        log_requests: false,
        ..GatewayConfig::new(format!("{}:{}", db.host, db.port))
    };
    tokio::spawn(tidb_gateway::serve(listener, config));
    format!("http://{addr}")
}

fn client(endpoint: &str, password: &str) -> Client {
    let db = &stack().mariadb;
    let config = Config::new("local.invalid", db.user.as_str(), password)
        .with_endpoint(endpoint)
        .unwrap()
        .with_database(db.database.as_str())
        .with_timeout(Duration::from_secs(20));
    Client::new(config, Arc::new(outbound::ReqwestFetch::default()))
}

async fn default_gateway() -> Client {
    gateway(Duration::from_secs(600)).await
}

/// A table with a name unique to this run, dropped by the caller.
async fn table(db: &Client, columns: &str) -> String {
    let name = unique("tidb_");
    db.execute(format!("CREATE TABLE {name} ({columns})"))
        .await
        .unwrap();
    name
}

async fn drop_table(db: &Client, name: &str) {
    db.execute(format!("DROP TABLE {name}")).await.unwrap();
}

async fn count(db: &Client, table: &str) -> i64 {
    db.query_one_as(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
}

/// serverless-js's integration-test/type.test.ts table, one column per type.
const ALL_TYPES: &str = "
    t_tinyint TINYINT, t_tinyint_unsigned TINYINT UNSIGNED,
    t_smallint SMALLINT, t_smallint_unsigned SMALLINT UNSIGNED,
    t_mediumint MEDIUMINT, t_mediumint_unsigned MEDIUMINT UNSIGNED,
    t_int INT, t_int_unsigned INT UNSIGNED,
    t_bigint BIGINT, t_bigint_unsigned BIGINT UNSIGNED,
    t_boolean BOOLEAN, t_float FLOAT(6, 2), t_double DOUBLE(6, 2),
    t_decimal DECIMAL(38, 19), t_char CHAR, t_varchar VARCHAR(10),
    c_binary BINARY(3), c_varbinary VARBINARY(16),
    t_tinytext TINYTEXT, t_text TEXT, t_mediumtext MEDIUMTEXT, t_longtext LONGTEXT,
    t_tinyblob TINYBLOB, t_blob BLOB, t_mediumblob MEDIUMBLOB, t_longblob LONGBLOB,
    t_date DATE, t_datetime DATETIME, t_timestamp TIMESTAMP NULL, t_time TIME,
    t_year YEAR, t_enum ENUM('enum1', 'enum2', 'enum3'), t_set SET('a', 'b', 'c'),
    t_bit BIT(64), t_json JSON";

#[tokio::test]
async fn every_column_type_comes_back_with_its_tidb_type_and_decoded_value() {
    let db = default_gateway().await;
    let name = table(&db, ALL_TYPES).await;
    // serverless-js's insertSQL, with its literals.
    db.execute(format!(
        "INSERT INTO {name} VALUES (-128, 255, -32768, 65535, -8388608, 16777215,
            -2147483648, 1, -9223372036854775808, 18446744073709551615,
            true, 123.456, 123.123, 123456789012.123456789012,
            '测', '测试', x'1520c5', x'1520c5', '测试tinytext', '0', '测试mediumtext', '测试longtext',
            'tinyblob', 'blob', 'mediumblob', 'longblob',
            '1977-01-01', '9999-12-31 23:59:59', '19731230153000', '23:59:59', '2154',
            'enum2', 'a,b', b'01010101', '{{\"a\":1,\"b\":\"2\"}}')"
    ))
    .await
    .unwrap();
    db.execute(format!("INSERT INTO {name} () VALUES ()"))
        .await
        .unwrap();

    let result = db
        .execute(format!("SELECT * FROM {name} ORDER BY t_int IS NULL"))
        .await
        .unwrap();
    let types: Vec<&str> = result
        .columns()
        .iter()
        .map(|c| c.type_name.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "TINYINT",
            "UNSIGNED TINYINT",
            "SMALLINT",
            "UNSIGNED SMALLINT",
            "MEDIUMINT",
            "UNSIGNED MEDIUMINT",
            "INT",
            "UNSIGNED INT",
            "BIGINT",
            "UNSIGNED BIGINT",
            "TINYINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL",
            "CHAR",
            "VARCHAR",
            "BINARY",
            "VARBINARY",
            "TINYTEXT",
            "TEXT",
            "MEDIUMTEXT",
            "LONGTEXT",
            "TINYBLOB",
            "BLOB",
            "MEDIUMBLOB",
            "LONGBLOB",
            "DATE",
            "DATETIME",
            "TIMESTAMP",
            "TIME",
            "YEAR",
            "ENUM",
            "SET",
            "BIT",
            "JSON",
        ]
    );
    assert!(result.columns().iter().all(|c| c.nullable));

    // serverless-js's fullTypeResult, in this driver's types.
    let expected = vec![
        Cell::Int(-128),
        Cell::Int(255),
        Cell::Int(-32768),
        Cell::Int(65535),
        Cell::Int(-8388608),
        Cell::Int(16777215),
        Cell::Int(-2147483648),
        Cell::Int(1),
        Cell::Int(i64::MIN),
        Cell::UInt(u64::MAX),
        Cell::Int(1),
        Cell::Float(123.46),
        Cell::Float(123.12),
        Cell::Decimal("123456789012.1234567890120000000".into()),
        Cell::Text("测".into()),
        Cell::Text("测试".into()),
        Cell::Bytes(vec![0x15, 0x20, 0xc5]),
        Cell::Bytes(vec![0x15, 0x20, 0xc5]),
        Cell::Text("测试tinytext".into()),
        Cell::Text("0".into()),
        Cell::Text("测试mediumtext".into()),
        Cell::Text("测试longtext".into()),
        Cell::Bytes(b"tinyblob".to_vec()),
        Cell::Bytes(b"blob".to_vec()),
        Cell::Bytes(b"mediumblob".to_vec()),
        Cell::Bytes(b"longblob".to_vec()),
        Cell::Date(Date::new(1977, 1, 1).unwrap()),
        Cell::DateTime("9999-12-31 23:59:59".parse().unwrap()),
        Cell::DateTime("1973-12-30 15:30:00".parse().unwrap()),
        Cell::Text("23:59:59".into()),
        Cell::Int(2154),
        Cell::Text("enum2".into()),
        Cell::Text("a,b".into()),
        Cell::Bytes(vec![0, 0, 0, 0, 0, 0, 0, 0x55]),
        Cell::Json(serde_json::json!({"a": 1, "b": "2"})),
    ];
    assert_eq!(result.rows()[0].cells(), expected.as_slice());
    assert!(result.rows()[1].cells().iter().all(Cell::is_null));
    drop_table(&db, &name).await;
}

#[tokio::test]
async fn nasty_strings_and_all_byte_values_round_trip_exactly() {
    let db = default_gateway().await;
    let name = table(
        &db,
        "id INT PRIMARY KEY, s LONGTEXT NOT NULL, v VARCHAR(200), b LONGBLOB",
    )
    .await;
    let nasty = [
        "it's",
        "say \"hi\"",
        "back\\slash\\",
        "\\'",
        "\\",
        "nul\0byte",
        "ctrl-z \u{1a} backspace \u{8} tab\t cr\r lf\n",
        "unicode: żółw 🐢 — e\u{301} 中文 \u{feff}",
        "placeholders ? :name :id ?? ::x",
        "'; DROP TABLE users; --",
        "%_ wildcards %",
        "",
        " trailing space ",
    ];
    let every_byte: Vec<u8> = (0..=255u8).collect();
    for (i, text) in nasty.iter().enumerate() {
        let id = i as i32;
        if i % 2 == 0 {
            db.execute(
                Statement::new(format!(
                    "INSERT INTO {name} (id, s, v, b) VALUES (?, ?, ?, ?)"
                ))
                .bind(id)
                .bind(*text)
                .bind(*text)
                .bind(text.as_bytes()),
            )
            .await
            .unwrap();
        } else {
            db.execute(
                Statement::new(format!(
                    "INSERT INTO {name} (id, s, v, b) VALUES (:id, :text, :text, :bytes)"
                ))
                .bind_named("id", id)
                .bind_named("text", *text)
                .bind_named("bytes", text.as_bytes()),
            )
            .await
            .unwrap();
        }
    }
    db.execute(
        Statement::new(format!("INSERT INTO {name} (id, s, b) VALUES (?, ?, ?)"))
            .bind(1000)
            .bind("bytes")
            .bind(every_byte.clone()),
    )
    .await
    .unwrap();

    #[derive(Deserialize)]
    struct Stored {
        s: String,
        v: Option<String>,
        b: Option<Vec<u8>>,
    }
    for (i, text) in nasty.iter().enumerate() {
        let stored: Stored = db
            .query_one_as(
                Statement::new(format!("SELECT s, v, b FROM {name} WHERE id = ?")).bind(i as i32),
            )
            .await
            .unwrap();
        assert_eq!(stored.s, *text, "row {i}");
        assert_eq!(stored.v.as_deref(), Some(*text), "row {i}");
        assert_eq!(stored.b.as_deref(), Some(text.as_bytes()), "row {i}");
        // The value also matches as a bound comparison.
        let found: Vec<i32> = db
            .query_as(
                Statement::new(format!("SELECT id FROM {name} WHERE s = ? AND id = ?"))
                    .bind(*text)
                    .bind(i as i32),
            )
            .await
            .unwrap();
        assert_eq!(found, [i as i32], "row {i}");
    }
    let bytes: Vec<u8> = db
        .query_one_as(format!("SELECT b FROM {name} WHERE id = 1000"))
        .await
        .unwrap();
    assert_eq!(bytes, every_byte);

    // Very long: 160 KB of nothing but characters that need escaping.
    let long = "'\\\"\0\u{1a}\n\r\u{8}".repeat(20_000);
    db.execute(
        Statement::new(format!("INSERT INTO {name} (id, s, b) VALUES (?, ?, ?)"))
            .bind(2000)
            .bind(long.as_str())
            .bind(long.as_bytes()),
    )
    .await
    .unwrap();
    #[derive(Deserialize)]
    struct Long {
        s: String,
        b: Vec<u8>,
        n: i64,
    }
    let stored: Long = db
        .query_one_as(
            Statement::new(format!(
                "SELECT s, b, (SELECT COUNT(*) FROM {name}) AS n FROM {name} WHERE id = ?"
            ))
            .bind(2000),
        )
        .await
        .unwrap();
    assert_eq!(stored.s.len(), long.len());
    assert!(stored.s == long, "the long string came back changed");
    assert_eq!(stored.b, long.as_bytes());
    assert_eq!(
        stored.n,
        nasty.len() as i64 + 2,
        "nothing broke out of a literal"
    );
    drop_table(&db, &name).await;
}

#[tokio::test]
async fn numbers_dates_json_and_lists_bind_and_decode() {
    let db = default_gateway().await;
    let name = table(
        &db,
        "id INT PRIMARY KEY, small BIGINT, big BIGINT UNSIGNED, f DOUBLE, d DECIMAL(30, 10),
         day DATE, at DATETIME(6), ok BOOLEAN, doc JSON, nothing INT",
    )
    .await;
    let at = DateTime::new(Date::new(2024, 2, 29).unwrap(), 23, 59, 58)
        .unwrap()
        .with_micros(123_456)
        .unwrap();
    let doc = serde_json::json!({"name": "Zoë's \"doc\"", "tags": ["a\\b", null], "n": 1.5});
    db.execute(
        Statement::new(format!(
            "INSERT INTO {name} VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?), (2, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(i64::MIN)
        .bind(u64::MAX)
        .bind(-1.5e-7)
        .bind("-12345678901234567890.0123456789")
        .bind(Date::new(1970, 1, 1).unwrap())
        .bind(at)
        .bind(true)
        .bind(doc.clone())
        .bind(None::<i32>)
        .bind(i64::MAX)
        .bind(0u64)
        .bind(1e21)
        .bind("0.5")
        .bind(Date::new(9999, 12, 31).unwrap())
        .bind(DateTime::new(Date::new(2000, 1, 1).unwrap(), 0, 0, 0).unwrap())
        .bind(false)
        .bind(serde_json::json!([1, 2, 3]))
        .bind(Value::Null),
    )
    .await
    .unwrap();

    #[derive(Debug, Deserialize, PartialEq)]
    struct Row {
        id: i32,
        small: i64,
        big: u64,
        f: f64,
        d: String,
        day: Date,
        at: DateTime,
        ok: bool,
        doc: serde_json::Value,
        nothing: Option<i32>,
    }
    let rows: Vec<Row> = db
        .query_as(format!("SELECT * FROM {name} ORDER BY id"))
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            Row {
                id: 1,
                small: i64::MIN,
                big: u64::MAX,
                f: -1.5e-7,
                d: "-12345678901234567890.0123456789".into(),
                day: Date::new(1970, 1, 1).unwrap(),
                at,
                ok: true,
                doc,
                nothing: None,
            },
            Row {
                id: 2,
                small: i64::MAX,
                big: 0,
                f: 1e21,
                d: "0.5000000000".into(),
                day: Date::new(9999, 12, 31).unwrap(),
                at: DateTime::new(Date::new(2000, 1, 1).unwrap(), 0, 0, 0).unwrap(),
                ok: false,
                doc: serde_json::json!([1, 2, 3]),
                nothing: None,
            },
        ]
    );
    // A DATETIME(6) prints with all its digits, as the server sent it.
    let text: String = db
        .query_one_as(format!("SELECT at FROM {name} WHERE id = 2"))
        .await
        .unwrap();
    assert_eq!(text, "2000-01-01 00:00:00.000000");

    let ids: Vec<i32> = db
        .query_as(
            Statement::new(format!("SELECT id FROM {name} WHERE id IN (?) ORDER BY id"))
                .bind(Value::list([2, 1, 99])),
        )
        .await
        .unwrap();
    assert_eq!(ids, [1, 2]);
    drop_table(&db, &name).await;
}

#[tokio::test]
async fn inserts_report_the_insert_id_and_updates_the_rows_affected() {
    let db = default_gateway().await;
    let name = table(&db, "id BIGINT AUTO_INCREMENT PRIMARY KEY, n INT").await;
    let first = db
        .execute(Statement::new(format!("INSERT INTO {name} (n) VALUES (?)")).bind(1))
        .await
        .unwrap();
    assert_eq!(first.rows_affected(), Some(1));
    let id = first.last_insert_id().unwrap();
    assert!(id > 0);
    let second = db
        .execute(format!("INSERT INTO {name} (n) VALUES (2), (3)"))
        .await
        .unwrap();
    assert_eq!(second.rows_affected(), Some(2));
    assert_eq!(second.last_insert_id(), Some(id + 1));
    let updated = db
        .execute(format!("UPDATE {name} SET n = n + 10 WHERE n >= 2"))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), Some(2));
    assert_eq!(updated.last_insert_id(), Some(0));
    let selected = db.execute(format!("SELECT * FROM {name}")).await.unwrap();
    assert_eq!(selected.rows_affected(), None);
    assert_eq!(selected.rows().len(), 3);
    drop_table(&db, &name).await;
}

#[tokio::test]
async fn a_committed_transaction_is_seen_and_a_rolled_back_one_is_not() {
    let db = default_gateway().await;
    let name = table(&db, "id INT PRIMARY KEY").await;

    let mut tx = db.begin(None).await.unwrap();
    tx.execute(Statement::new(format!("INSERT INTO {name} VALUES (?)")).bind(1))
        .await
        .unwrap();
    let inside: i64 = tx
        .query_one_as(format!("SELECT COUNT(*) FROM {name}"))
        .await
        .unwrap();
    assert_eq!(inside, 1, "the transaction sees its own insert");
    assert_eq!(count(&db, &name).await, 0, "others do not, before COMMIT");
    tx.commit().await.unwrap();
    assert_eq!(count(&db, &name).await, 1);

    let mut tx = db.begin(None).await.unwrap();
    tx.execute(format!("INSERT INTO {name} VALUES (2)"))
        .await
        .unwrap();
    tx.execute(format!("DELETE FROM {name} WHERE id = 1"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let ids: Vec<i32> = db.query_as(format!("SELECT id FROM {name}")).await.unwrap();
    assert_eq!(ids, [1]);

    // A failed statement leaves the transaction open and usable.
    let mut tx = db.begin(None).await.unwrap();
    let err = tx
        .execute(format!("INSERT INTO {name} VALUES (1)"))
        .await
        .unwrap_err();
    assert!(err.is_duplicate_entry(), "{err}");
    tx.execute(format!("INSERT INTO {name} VALUES (3)"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&db, &name).await, 2);
    drop_table(&db, &name).await;
}

/// A gateway that traces its statements (`--trace-statements`) into a
/// directory of its own, named from `prefix`: a client logged in to it,
/// the trace file, and the directory, to remove.
async fn traced_gateway(prefix: &str) -> (Client, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("statements.jsonl");
    let db = &stack().mariadb;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let config = GatewayConfig {
        log_requests: false,
        trace_statements: Some(Arc::new(
            tidb_gateway::StatementTrace::create(&path).unwrap(),
        )),
        ..GatewayConfig::new(format!("{}:{}", db.host, db.port))
    };
    tokio::spawn(tidb_gateway::serve(listener, config));
    (client(&endpoint, &db.password), path, dir)
}

#[tokio::test]
async fn a_statement_trace_times_each_statement_of_each_transaction() {
    let (db, path, dir) = traced_gateway("gateway-trace-").await;
    let name = table(&db, "id INT PRIMARY KEY, secret VARCHAR(20)").await;
    db.execute(Statement::new(format!("INSERT INTO {name} VALUES (1, ?)")).bind("hunter2"))
        .await
        .unwrap();

    // Two transactions whose statements alternate.
    let mut first = db.begin(Some(IsolationLevel::ReadCommitted)).await.unwrap();
    let mut second = db.begin(None).await.unwrap();
    first
        .execute(format!("SELECT id FROM {name} WHERE id = 1 FOR UPDATE"))
        .await
        .unwrap();
    second
        .execute(Statement::new(format!("INSERT INTO {name} VALUES (2, ?)")).bind("hunter3"))
        .await
        .unwrap();
    first
        .execute(
            Statement::new(format!("UPDATE {name} SET secret = ? WHERE id = 1")).bind("hunter4"),
        )
        .await
        .unwrap();
    let tokens = [first.session().to_owned(), second.session().to_owned()];
    second.rollback().await.unwrap();
    first.commit().await.unwrap();
    drop_table(&db, &name).await;

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        !text.contains("hunter") && !text.contains(name.as_str()),
        "no statement text or value is traced: {text}"
    );
    for token in &tokens {
        assert!(!text.contains(token.as_str()), "no session token is traced");
    }
    let records: Vec<stack_manifest::StatementRecord> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = records.iter().map(|r| r.statement.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "CREATE",
            "INSERT",
            "BEGIN",
            "BEGIN",
            "SELECT FOR UPDATE",
            "INSERT",
            "UPDATE",
            "ROLLBACK",
            "COMMIT",
            "DROP"
        ]
    );
    let on_its_own = [0, 1, 9];
    for i in on_its_own {
        assert_eq!(records[i].session, None, "{:?}", records[i]);
    }
    let first_tx = [2, 4, 6, 8].map(|i| records[i].session.clone());
    let second_tx = [3, 5, 7].map(|i| records[i].session.clone());
    assert!(
        first_tx.iter().all(|s| s.is_some() && *s == first_tx[0]),
        "{records:?}"
    );
    assert!(
        second_tx.iter().all(|s| s.is_some() && *s == second_tx[0]),
        "{records:?}"
    );
    assert_ne!(first_tx[0], second_tx[0]);
    for record in &records {
        assert!(record.received_us <= record.answered_us, "{record:?}");
    }
    // The client waited for each answer before it sent the next statement.
    for pair in records.windows(2) {
        assert!(pair[0].answered_us <= pair[1].received_us, "{pair:?}");
    }
}

#[tokio::test]
async fn isolation_levels_reach_the_database() {
    let db = default_gateway().await;
    let name = table(&db, "id INT PRIMARY KEY").await;

    // READ COMMITTED sees a row committed by someone else meanwhile...
    let mut tx = db.begin(Some(IsolationLevel::ReadCommitted)).await.unwrap();
    let before: i64 = tx
        .query_one_as(format!("SELECT COUNT(*) FROM {name}"))
        .await
        .unwrap();
    db.execute(format!("INSERT INTO {name} VALUES (1)"))
        .await
        .unwrap();
    let after: i64 = tx
        .query_one_as(format!("SELECT COUNT(*) FROM {name}"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((before, after), (0, 1));

    // ...REPEATABLE READ keeps its snapshot.
    let mut tx = db
        .begin(Some(IsolationLevel::RepeatableRead))
        .await
        .unwrap();
    let before: i64 = tx
        .query_one_as(format!("SELECT COUNT(*) FROM {name}"))
        .await
        .unwrap();
    db.execute(format!("INSERT INTO {name} VALUES (2)"))
        .await
        .unwrap();
    let after: i64 = tx
        .query_one_as(format!("SELECT COUNT(*) FROM {name}"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((before, after), (1, 1));
    drop_table(&db, &name).await;
}

#[tokio::test]
async fn an_idle_transaction_is_rolled_back_and_its_session_refused() {
    let db = gateway(Duration::from_secs(1)).await;
    let name = table(&db, "id INT PRIMARY KEY").await;
    let mut tx = db.begin(None).await.unwrap();
    tx.execute(format!("INSERT INTO {name} VALUES (1)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let err = tx.execute("SELECT 1").await.unwrap_err();
    let database = err.database().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(database.status, 400, "{err}");
    assert_eq!(err.mysql_errno(), Some(1105), "{err}");
    assert!(database.message.contains("session not found"), "{err}");
    assert_eq!(err.statement(), Some("SELECT 1"));

    // Rolled back, and the row lock released: the same key inserts at once.
    assert_eq!(count(&db, &name).await, 0);
    db.execute(
        Statement::new(format!("INSERT INTO {name} VALUES (1)")).timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    drop_table(&db, &name).await;
}

/// A request that gives up mid-transaction (its future dropped, as at the
/// Worker's deadline) must not leave its row locks behind: with a
/// background, the `ROLLBACK` goes out at once and the next writer of the
/// row gets the lock; without one, that writer waits until the session's
/// idle timeout (here 4 s; 10 minutes on TiDB Cloud) ends the transaction.
#[tokio::test]
async fn an_abandoned_transaction_releases_its_locks_when_the_client_has_a_background() {
    let db = gateway(Duration::from_secs(4)).await;
    let name = table(&db, "id INT PRIMARY KEY, n INT").await;
    db.execute(format!("INSERT INTO {name} VALUES (1, 0), (2, 0)"))
        .await
        .unwrap();
    let update = |id: i32| {
        Statement::new(format!("UPDATE {name} SET n = n + 1 WHERE id = ?"))
            .bind(id)
            .timeout(Duration::from_secs(1))
    };
    let abandon = |db: Client, id: i32| {
        let statement = update(id);
        async move {
            let mut tx = db.begin(None).await.unwrap();
            tx.execute(statement).await.unwrap();
            // Dropped here, neither committed nor rolled back.
        }
    };

    abandon(db.clone(), 1).await;
    let err = db.execute(update(1)).await.unwrap_err();
    assert!(err.is_timeout(), "row 1 is still locked: {err}");

    let background = outbound::Background::new(|work| {
        tokio::spawn(work);
    });
    abandon(db.clone().with_background(background), 2).await;
    db.execute(update(2))
        .await
        .expect("row 2 was released by the background ROLLBACK");
    let n: i32 = db
        .query_one_as(format!("SELECT n FROM {name} WHERE id = 2"))
        .await
        .unwrap();
    assert_eq!(
        n, 1,
        "the abandoned update was rolled back, the later one kept"
    );

    // Row 1's transaction ends with its session's idle timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop_table(&db, &name).await;
}

/// Row 1 of `table`, locked by a transaction of its own until the sender
/// is used (or dropped); the task ends once it has committed.
async fn hold_row(
    table: &str,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    use sqlx::Connection as _;

    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let query = format!("SELECT id FROM {table} WHERE id = 1 FOR UPDATE");
    let holder = tokio::spawn(async move {
        let mut conn = e2e::database().await;
        let mut lock = conn.begin().await.unwrap();
        sqlx::query(&query).execute(&mut *lock).await.unwrap();
        locked.send(()).unwrap();
        let _ = released.await;
        lock.commit().await.unwrap();
    });
    is_locked.await.unwrap();
    (holder, release)
}

/// Row 1 of `table` can be changed at once: no transaction holds it.
async fn assert_row_free(db: &Client, table: &str) {
    db.execute(
        Statement::new(format!("UPDATE {table} SET n = n + 1 WHERE id = 1"))
            .timeout(Duration::from_secs(1)),
    )
    .await
    .expect("the row is free once the ROLLBACK is answered");
}

/// A client that stops waiting for a statement of its transaction (a
/// request's deadline, the statement's timeout) hangs up on the gateway
/// while the statement still runs at the database, here waiting for a row
/// lock. The statement runs to its end all the same, as in a database
/// server, so the session's next statement, the `ROLLBACK`, gets its own
/// answer and ends the transaction, and the row is free once it has.
#[tokio::test]
async fn a_statement_whose_client_hung_up_ends_before_the_sessions_next() {
    let db = default_gateway().await;
    let name = table(&db, "id INT PRIMARY KEY, n INT").await;
    db.execute(format!("INSERT INTO {name} VALUES (1, 0)"))
        .await
        .unwrap();
    let (holder, release) = hold_row(&name).await;

    let mut tx = db.begin(None).await.unwrap();
    let waiting = tx.execute(format!("SELECT id FROM {name} WHERE id = 1 FOR UPDATE"));
    let gave_up = tokio::time::timeout(Duration::from_millis(300), waiting).await;
    assert!(gave_up.is_err(), "the locking read waited for the row");
    let rollback = tokio::spawn(tx.rollback());
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).unwrap();
    holder.await.unwrap();
    let rolled_back = rollback.await.unwrap().unwrap();

    assert!(
        rolled_back.columns().is_empty(),
        "the ROLLBACK got the locking read's answer: {:?}",
        rolled_back.columns()
    );
    assert_row_free(&db, &name).await;
    drop_table(&db, &name).await;
}

/// A transaction dropped while one of its statements still runs (a
/// request's deadline dropping the handler mid-statement): its background
/// `ROLLBACK` goes out only once that statement is answered, never beside
/// it. serverless-js forbids a second statement while one of the same
/// transaction runs, and TiDB Cloud does not say what it does with one.
/// The gateway's trace shows when the `ROLLBACK` arrived: after the row
/// was let go (which the locking read waited for), where it once arrived
/// at once.
#[tokio::test]
async fn a_dropped_transaction_rolls_back_only_after_its_running_statement() {
    let (db, path, dir) = traced_gateway("gateway-overlap-").await;
    let name = table(&db, "id INT PRIMARY KEY, n INT").await;
    db.execute(format!("INSERT INTO {name} VALUES (1, 0)"))
        .await
        .unwrap();
    let (holder, release) = hold_row(&name).await;
    let background = outbound::Background::new(|work| {
        tokio::spawn(work);
    });

    let mut tx = db
        .clone()
        .with_background(background)
        .begin(None)
        .await
        .unwrap();
    let waiting = tx.execute(format!("SELECT id FROM {name} WHERE id = 1 FOR UPDATE"));
    let gave_up = tokio::time::timeout(Duration::from_millis(300), waiting).await;
    assert!(gave_up.is_err(), "the locking read waited for the row");
    drop(tx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let let_go_us = stack_manifest::StatementRecord::clock_us();
    release.send(()).unwrap();
    holder.await.unwrap();

    let rollback = eventually("the background ROLLBACK in the trace", || async {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<stack_manifest::StatementRecord>(line).unwrap())
            .find(|record| record.statement == "ROLLBACK")
    })
    .await;
    assert!(
        rollback.received_us >= let_go_us,
        "the ROLLBACK arrived {} us before the row was let go",
        let_go_us - rollback.received_us
    );
    assert_row_free(&db, &name).await;
    drop_table(&db, &name).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_the_database() {
    let endpoint = start_gateway(Duration::from_secs(600)).await;
    // A login with the right password first, so the gateway has a pooled
    // connection the wrong password must not get.
    client(&endpoint, &stack().mariadb.password)
        .execute("SELECT 1")
        .await
        .unwrap();
    let db = client(&endpoint, "not-the-password");
    let err = db.execute("SELECT 1").await.unwrap_err();
    let database = err.database().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(database.status, 401);
    assert_eq!(err.mysql_errno(), Some(1045));
    assert!(database.message.contains("Access denied"), "{err}");
    let shown = format!("{err} {err:?} {db:?}");
    assert!(!shown.contains("not-the-password"), "{shown}");
    assert!(!shown.contains(&stack().mariadb.password), "{shown}");
}

#[tokio::test]
async fn a_pooled_connection_the_database_closed_is_not_handed_to_a_request() {
    #[derive(Deserialize)]
    struct Id {
        id: u64,
    }
    let db = default_gateway().await;
    let connection_of = || db.query_one_as::<Id>("SELECT CONNECTION_ID() AS id");
    // The statement's connection goes back to the gateway's pool.
    let first = connection_of().await.unwrap().id;
    sqlx::query(&format!("KILL CONNECTION {first}"))
        .execute(&mut e2e::database().await)
        .await
        .unwrap();
    eventually("the pooled connection killed", || async move {
        let alive: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.processlist WHERE id = ?")
                .bind(first)
                .fetch_one(&mut e2e::database().await)
                .await
                .unwrap();
        (alive == 0).then_some(())
    })
    .await;
    // The next statement gets a working connection, not the dead one's
    // error (as TiDB Cloud never shows a client its backend connections).
    let second = connection_of().await.unwrap_or_else(|e| panic!("{e}")).id;
    assert_ne!(second, first);
}

#[tokio::test]
async fn sql_errors_name_the_statement_and_carry_the_mysql_code() {
    let db = default_gateway().await;
    let err = db.execute("SELEC 1").await.unwrap_err();
    assert_eq!(err.mysql_errno(), Some(1064), "{err}");
    assert_eq!(err.database().unwrap().status, 400);
    assert!(err.to_string().contains("`SELEC 1`"), "{err}");

    let missing = unique("tidb_missing_");
    let err = db
        .execute(
            Statement::new(format!("SELECT * FROM {missing} WHERE a = ?")).bind("secret-value"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.mysql_errno(), Some(1146), "{err}");
    assert_eq!(
        err.statement(),
        Some(format!("SELECT * FROM {missing} WHERE a = ?").as_str())
    );
    assert!(!format!("{err} {err:?}").contains("secret-value"));

    let name = table(&db, "id INT PRIMARY KEY").await;
    db.execute(format!("INSERT INTO {name} VALUES (1)"))
        .await
        .unwrap();
    let err = db
        .execute(Statement::new(format!("INSERT INTO {name} VALUES (?)")).bind(1))
        .await
        .unwrap_err();
    assert!(err.is_duplicate_entry(), "{err}");
    drop_table(&db, &name).await;

    // Several statements in one query are refused, as TiDB does by default.
    let err = db.execute("SELECT 1; SELECT 2").await.unwrap_err();
    assert!(err.database().is_some(), "{err}");
}

#[tokio::test]
async fn a_row_that_does_not_fit_the_struct_names_the_column() {
    let db = default_gateway().await;
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        id: i64,
        label: i64,
    }
    let err = db
        .query_as::<Wrong>("SELECT 1 AS id, 'x' AS label")
        .await
        .unwrap_err();
    let ErrorKind::Decode(decode) = err.kind() else {
        panic!("{err}")
    };
    assert_eq!(decode.column(), Some("label"));
}

#[tokio::test]
async fn a_stateful_session_keeps_its_variables_until_closed() {
    let db = default_gateway().await;
    let mut session = db.persist().await.unwrap();
    session.execute("SET @answer = 42").await.unwrap();
    let answer: Option<i64> = session
        .query_as("SELECT @answer")
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(answer, Some(42));
    // Another request is another session.
    let elsewhere: Option<i64> = db.query_one_as("SELECT @answer").await.unwrap();
    assert_eq!(elsewhere, None);
    session.close().await.unwrap();
}

#[tokio::test]
async fn large_answers_arrive_gzipped_and_decode() {
    let endpoint = start_gateway(Duration::from_secs(600)).await;
    let query = "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900)
                 SELECT i, REPEAT('x', 50) AS x FROM n";
    let rows: Vec<(i64, String)> = client(&endpoint, &stack().mariadb.password)
        .query_as(query)
        .await
        .unwrap();
    assert_eq!(rows.len(), 900);
    assert_eq!(rows[899], (900, "x".repeat(50)));

    // On the wire: gzip, since the driver (like serverless-js) accepts it.
    let db = &stack().mariadb;
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .post(format!("{endpoint}/v1beta/sql"))
        .basic_auth(&db.user, Some(&db.password))
        .header("TiDB-Database", &db.database)
        .header("Accept-Encoding", "gzip")
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    assert!(raw.headers()["tidb-session"].len() > 1);
}

/// The API's notes of invalidations Redis missed (`api::pages::missed`),
/// with its own statements: two writes to a page miss theirs; the first
/// one's try lands, but the second replaced its note meanwhile, so the
/// note stays for an invalidation sent after the second write. Here and
/// not beside the pages' tests: the cron those run would send and remove
/// the notes in the middle.
#[tokio::test]
async fn a_missed_invalidation_is_forgotten_only_with_the_token_it_holds() {
    use api::pages::missed::{forget, note, oldest, Missed};
    let db = default_gateway().await;
    let slug = unique("noted-");
    let first = Missed {
        slug: slug.clone(),
        note: 1,
    };
    let second = Missed {
        slug: slug.clone(),
        note: 2,
    };

    note(&db, &first).await.unwrap();
    let listed = oldest(&db, 1000).await.unwrap();
    assert!(listed.contains(&first), "{listed:?}");
    note(&db, &second).await.unwrap();
    forget(&db, &first).await.unwrap();
    assert_eq!(
        e2e::missed_invalidations(&slug).await,
        [2],
        "the second write's note stays"
    );
    forget(&db, &second).await.unwrap();
    assert_eq!(e2e::missed_invalidations(&slug).await, Vec::<i64>::new());
}
