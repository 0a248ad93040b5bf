//! `cargo xtask migrate` against the stack's MariaDB, on a database of its
//! own: the repository's migrations apply once and then apply nothing; a
//! migration that fails half way stops with a clear message, leaves no
//! record that would block the next run, and runs again once fixed.

use std::path::Path;
use std::process::Output;

use e2e::{repository, stack, unique, xtask};
use sqlx::Connection;

/// `cargo xtask --json migrate --url URL --source DIR`, with the xtask
/// binary that runs this suite (`EDGE_API_XTASK`), else through cargo.
fn migrate(url: &str, source: &Path) -> Output {
    xtask()
        .args(["--json", "migrate", "--url", url])
        .arg("--source")
        .arg(source)
        .output()
        .expect("xtask runs")
}

fn applied(output: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    report["applied"].as_u64().unwrap()
}

#[tokio::test]
async fn migrations_apply_once_and_a_failed_one_does_not_block_the_next_run() {
    let db = &stack().mariadb;
    let database = unique("mig_");
    let server = format!(
        "mysql://{}:{}@{}:{}",
        db.user, db.password, db.host, db.port
    );
    let mut admin = sqlx::MySqlConnection::connect(&format!("{server}/{}", db.database))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{server}/{database}");

    let migrations = repository().join("migrations");
    let shipped = std::fs::read_dir(&migrations)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as u64;
    let first = migrate(&url, &migrations);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(applied(&first), shipped);
    let second = migrate(&url, &migrations);
    assert!(second.status.success());
    assert_eq!(applied(&second), 0, "nothing left to apply");

    // A copy of the migrations plus one that fails at its second statement.
    let source = std::env::temp_dir().join(unique("migrations-"));
    std::fs::create_dir_all(&source).unwrap();
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "sql") {
            std::fs::copy(&path, source.join(path.file_name().unwrap())).unwrap();
        }
    }
    let broken = source.join("20991231000000_broken.sql");
    std::fs::write(
        &broken,
        "CREATE TABLE IF NOT EXISTS broken_one (id INT);\n\
         CREATE TABLE IF NOT EXISTS broken_two (id INT, id INT);\n",
    )
    .unwrap();
    let failed = migrate(&url, &source);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("migration 20991231000000 failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&db.password),
        "the password is never printed"
    );
    let recorded: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM `{database}`._sqlx_migrations WHERE version = 20991231000000"
    ))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(recorded, 0, "no dirty record left behind");

    // Fixed, it runs again from the top: its first statement is idempotent.
    std::fs::write(
        &broken,
        "CREATE TABLE IF NOT EXISTS broken_one (id INT);\n\
         CREATE TABLE IF NOT EXISTS broken_two (id INT, other INT);\n",
    )
    .unwrap();
    let fixed = migrate(&url, &source);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(applied(&fixed), 1);

    sqlx::query(&format!("DROP DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    std::fs::remove_dir_all(&source).unwrap();
}
