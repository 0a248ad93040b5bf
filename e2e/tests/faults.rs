//! Faults under load. While writers, readers and an uploader keep the real
//! Worker busy, each dependency in turn (Redis, MariaDB behind the TiDB
//! gateway, the gateway itself, the S3 server, and the telemetry sinks:
//! Bugsink, Prometheus and the Loki stand-in together) is frozen and
//! thawed, then stopped and started again as a new process; the Worker is
//! never restarted. What must hold (../shared/DESIGN.md):
//! - every answer is one the design allows: 2xx, or, for a request that
//!   needs the failing dependency, a 503/504 problem document; never a 500
//!   or a dropped connection, and a Redis fault fails nothing (reads bypass
//!   the cache, the local limiter fails open);
//! - no request needs a sink, and no answer waits for one: telemetry goes
//!   out in `waitUntil`, so with every request's sends hanging until their
//!   timeout, each answer still comes sooner than that timeout;
//! - the API comes back on its own (`/readyz` 200), after which every
//!   answer is a 2xx again;
//! - TiDB holds every acknowledged write exactly once and nothing twice:
//!   each page's revisions are numbered 1..n without gaps, every body
//!   appears at most once, every 2xx write is there under the number its
//!   answer gave, and a read after recovery shows the newest revision (no
//!   stale cache entry);
//! - an upload recorded complete has its object in storage, and every file
//!   that reached storage whole can be completed once storage is back (one
//!   the store died writing is refused and deleted).
//!
//! In its own test binary on purpose: the faults would fail any test
//! running beside them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use e2e::access::{team_key, user_claims};
use e2e::faults::{
    frozen_sinks, listen_address, stopped_sinks, until_sinks_ready, until_status, Frozen, Stopped,
};
use e2e::{api, http, stack, unique};
use serde_json::{json, Value};

const WRITERS: usize = 3;
const READERS: usize = 2;
/// Load before the fault, and after recovery.
const STEADY: Duration = Duration::from_millis(1500);
/// How long a fault lasts.
const OUTAGE: Duration = Duration::from_secs(3);
/// How long the Worker gives a telemetry send (`api::telemetry::SEND_TIMEOUT`):
/// an answer that took this long may have waited for a hung sink.
const SINK_SEND_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dependency {
    Redis,
    Database,
    Gateway,
    Storage,
    /// Bugsink, Prometheus and the Loki stand-in, all at once.
    Telemetry,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGSTOP, then SIGCONT.
    Hang,
    /// SIGTERM, then a new process.
    Stop,
}

/// The kinds of request the load sends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Call {
    Read,
    Write,
    Grant,
    /// The browser's PUT to the presigned URL, straight to storage.
    Store,
    Complete,
}

impl Call {
    /// Whether the API needs `dependency` to answer this call with a 2xx.
    fn needs(self, dependency: Dependency) -> bool {
        match dependency {
            // The cache and the limiter only; neither is required.
            Dependency::Redis => false,
            // A read may still be a cache hit; it is allowed either way.
            Dependency::Database | Dependency::Gateway => self != Call::Store,
            Dependency::Storage => matches!(self, Call::Store | Call::Complete),
            // Sent in `waitUntil`, after the answer.
            Dependency::Telemetry => false,
        }
    }
}

/// One answer of the load, with when its request was sent and answered.
#[derive(Debug)]
struct Answer {
    call: Call,
    sent: Instant,
    answered: Instant,
    /// The status, or the transport error.
    status: Result<u16, String>,
    /// The problem document's type, for a problem answer.
    problem: Option<String>,
    /// What a successful write or read answered: its body and revision.
    page: Option<(String, i64)>,
    /// For a write: the body it sent.
    sent_body: Option<String>,
    slug: Option<String>,
}

/// What the load's tasks share: whether to go on, and which kinds of call
/// were answered after recovery.
#[derive(Default)]
struct Load {
    stopped: AtomicBool,
    recovered: OnceLock<Instant>,
    after_recovery: Mutex<Vec<Call>>,
}

impl Load {
    fn running(&self) -> bool {
        !self.stopped.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn recovered(&self, at: Instant) {
        self.recovered.set(at).unwrap();
    }

    fn seen(&self, answer: &Answer) {
        if self.recovered.get().is_some_and(|r| answer.sent >= *r) {
            let mut calls = self.after_recovery.lock().unwrap();
            if !calls.contains(&answer.call) {
                calls.push(answer.call);
            }
        }
    }

    fn seen_every_call_after_recovery(&self) -> bool {
        self.after_recovery.lock().unwrap().len() == ALL_CALLS.len()
    }
}

const ALL_CALLS: [Call; 5] = [
    Call::Read,
    Call::Write,
    Call::Grant,
    Call::Store,
    Call::Complete,
];

/// The Worker is called as the Pages shim calls it: with the binding
/// secret, a client address of this run's own (so the load is counted
/// apart from every other test's), and a token for the admin site's
/// Access application.
fn through_the_binding(request: reqwest::RequestBuilder, client: &str) -> reqwest::RequestBuilder {
    // Signed once (RS256 costs the load generator more than a request):
    // valid 10 minutes, far longer than the test runs.
    static TOKEN: OnceLock<String> = OnceLock::new();
    let token = TOKEN.get_or_init(|| {
        let team = &stack().access;
        team_key().sign(&user_claims(
            &team.team_domain,
            &team.binding_aud,
            "faults@example.com",
            e2e::now(),
        ))
    });
    request
        .header(
            "x-api-binding-token",
            &stack().api.as_ref().unwrap().binding_secret,
        )
        .header("x-api-client-ip", client)
        .header("cf-access-jwt-assertion", token)
}

async fn answer_of(
    call: Call,
    sent: Instant,
    result: reqwest::Result<reqwest::Response>,
) -> (Answer, Option<Value>) {
    let mut answer = Answer {
        call,
        sent,
        answered: Instant::now(),
        status: Err(String::new()),
        problem: None,
        page: None,
        sent_body: None,
        slug: None,
    };
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            answer.status = Err(error.to_string());
            return (answer, None);
        }
    };
    let status = response.status().as_u16();
    let is_problem = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t == "application/problem+json");
    let body: Option<Value> = response.json().await.ok();
    answer.answered = Instant::now();
    answer.status = Ok(status);
    if is_problem {
        answer.problem = Some(
            body.as_ref()
                .and_then(|b| b["type"].as_str())
                .unwrap_or("(no type)")
                .to_owned(),
        );
    }
    (answer, body)
}

/// Writes a new revision of `slug` with `body`.
async fn write(slug: &str, client: &str, body: String) -> Answer {
    let sent = Instant::now();
    let result = through_the_binding(http().put(format!("{}/v1/pages/{slug}", api())), client)
        .json(&json!({"title": "under load", "body": body}))
        .send()
        .await;
    let (mut answer, page) = answer_of(Call::Write, sent, result).await;
    answer.page = page_of(&answer, page);
    answer.sent_body = Some(body);
    answer.slug = Some(slug.to_owned());
    answer
}

/// Writes a new revision of `slug` again and again, each with a body of
/// its own, the load ends.
async fn writer(slug: String, client: String, scenario: String, load: Arc<Load>) -> Vec<Answer> {
    let mut answers = Vec::new();
    for k in 1.. {
        if !load.running() {
            break;
        }
        let answer = write(&slug, &client, format!("{scenario} {k}")).await;
        load.seen(&answer);
        answers.push(answer);
    }
    answers
}

fn page_of(answer: &Answer, body: Option<Value>) -> Option<(String, i64)> {
    let body = body?;
    matches!(answer.status, Ok(200 | 201)).then(|| {
        (
            body["body"].as_str().unwrap_or_default().to_owned(),
            body["revision"].as_i64().unwrap_or_default(),
        )
    })
}

async fn reader(slugs: Vec<String>, client: String, load: Arc<Load>) -> Vec<Answer> {
    let mut answers = Vec::new();
    for k in 0.. {
        if !load.running() {
            break;
        }
        let slug = &slugs[k % slugs.len()];
        let sent = Instant::now();
        let result = through_the_binding(http().get(format!("{}/v1/pages/{slug}", api())), &client)
            .send()
            .await;
        let (mut answer, page) = answer_of(Call::Read, sent, result).await;
        answer.page = page_of(&answer, page);
        answer.slug = Some(slug.clone());
        load.seen(&answer);
        answers.push(answer);
    }
    answers
}

/// One file's way through the upload flow, and what each step answered.
#[derive(Debug, Default)]
struct Upload {
    id: String,
    stored: bool,
    completed: bool,
}

/// What the uploader stores, as `text/plain`.
const UPLOADED: &[u8] = b"a file sent under load\n";

/// Grants, stores and completes small files the load ends.
async fn uploader(client: String, load: Arc<Load>) -> (Vec<Answer>, Vec<Upload>) {
    let (mut answers, mut uploads) = (Vec::new(), Vec::new());
    let contents = UPLOADED.to_vec();
    // A storage that hangs must not hang the loop: the browser gives up.
    let browser = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    while load.running() {
        let sent = Instant::now();
        let result = through_the_binding(http().post(format!("{}/v1/uploads", api())), &client)
            .json(
                &json!({"file_name": "load.txt", "content_type": "text/plain",
                          "size_bytes": contents.len()}),
            )
            .send()
            .await;
        let (answer, grant) = answer_of(Call::Grant, sent, result).await;
        let granted = answer.status == Ok(201);
        load.seen(&answer);
        answers.push(answer);
        let Some(grant) = grant.filter(|_| granted) else {
            continue;
        };
        let mut upload = Upload {
            id: grant["id"].as_str().unwrap().to_owned(),
            ..Upload::default()
        };

        let sent = Instant::now();
        let mut request = browser
            .put(grant["upload"]["url"].as_str().unwrap())
            .body(contents.clone());
        for (name, value) in grant["upload"]["headers"].as_object().unwrap() {
            request = request.header(name, value.as_str().unwrap());
        }
        let (answer, _) = answer_of(Call::Store, sent, request.send().await).await;
        upload.stored = answer.status == Ok(200);
        load.seen(&answer);
        answers.push(answer);
        if upload.stored {
            let sent = Instant::now();
            let result = through_the_binding(
                http().post(format!("{}/v1/uploads/{}/complete", api(), upload.id)),
                &client,
            )
            .send()
            .await;
            let (answer, _) = answer_of(Call::Complete, sent, result).await;
            upload.completed = answer.status == Ok(200);
            load.seen(&answer);
            answers.push(answer);
        }
        uploads.push(upload);
    }
    (answers, uploads)
}

/// Starts `fault` on `dependency`; the returned guard ends it.
enum Injected {
    Frozen(Vec<Frozen>),
    Stopped(Vec<Stopped>),
}

fn inject(dependency: Dependency, fault: Fault) -> Injected {
    let (name, program, mark) = match dependency {
        Dependency::Redis => (
            "redis",
            "redis-server",
            // redis-server retitles itself `redis-server 127.0.0.1:PORT`.
            format!(":{}", stack().redis.port),
        ),
        Dependency::Database => (
            "mariadb",
            "mariadbd",
            stack().state_dir.to_string_lossy().into_owned(),
        ),
        Dependency::Gateway => (
            "tidb",
            "tidb-gateway",
            listen_address(&stack().tidb.endpoint),
        ),
        Dependency::Storage => (
            "s3",
            "s3s-fs",
            stack().state_dir.join("s3").to_string_lossy().into_owned(),
        ),
        // Three servers, one of them a process group.
        Dependency::Telemetry => {
            return match fault {
                Fault::Hang => Injected::Frozen(frozen_sinks()),
                Fault::Stop => Injected::Stopped(stopped_sinks()),
            }
        }
    };
    let mark = mark.as_str();
    match fault {
        Fault::Hang => Injected::Frozen(vec![Frozen::new(program, mark)]),
        Fault::Stop => {
            // Debian's redis-server is a link to redis-check-rdb, which
            // picks its role from the name it is started under, and the
            // running server no longer shows its command line.
            let restart_with = (dependency == Dependency::Redis).then(|| {
                let config = stack().state_dir.join("redis/redis.conf");
                vec![
                    "redis-server".to_owned(),
                    config.to_string_lossy().into_owned(),
                ]
            });
            Injected::Stopped(vec![Stopped::new(name, program, mark, restart_with)])
        }
    }
}

fn end(injected: Injected) {
    match injected {
        Injected::Frozen(frozen) => drop(frozen),
        Injected::Stopped(stopped) => stopped.into_iter().for_each(Stopped::restart),
    }
}

/// What one scenario saw.
struct Run {
    scenario: String,
    fault_began: Instant,
    recovered: Instant,
    answers: Vec<Answer>,
    uploads: Vec<Upload>,
    slugs: Vec<String>,
}

async fn run(dependency: Dependency, fault: Fault) -> Run {
    let scenario = format!("{dependency:?}-{fault:?}").to_lowercase();
    let id = unique("");
    let client = format!("2001:db8:{}:{}::1", &id[..4], &id[4..8]);
    let slugs: Vec<String> = (0..WRITERS)
        .map(|w| format!("faults-{scenario}-{w}-{}", &id[..8]))
        .collect();
    // Every page exists before the readers start.
    let mut answers = Vec::new();
    for slug in &slugs {
        let created = write(slug, &client, format!("{scenario} 0")).await;
        assert_eq!(created.status, Ok(201), "{slug}: {created:?}");
        answers.push(created);
    }
    let load = Arc::new(Load::default());
    let mut tasks = Vec::new();
    for slug in &slugs {
        tasks.push(tokio::spawn(writer(
            slug.clone(),
            client.clone(),
            scenario.clone(),
            load.clone(),
        )));
    }
    for _ in 0..READERS {
        tasks.push(tokio::spawn(reader(
            slugs.clone(),
            client.clone(),
            load.clone(),
        )));
    }
    let uploads = tokio::spawn(uploader(client.clone(), load.clone()));

    tokio::time::sleep(STEADY).await;
    let fault_began = Instant::now();
    let injected = tokio::task::spawn_blocking(move || inject(dependency, fault))
        .await
        .unwrap();
    tokio::time::sleep(OUTAGE).await;
    tokio::task::spawn_blocking(move || end(injected))
        .await
        .unwrap();
    until_status(&format!("{}/readyz", api()), 200).await;
    if dependency == Dependency::Telemetry {
        until_sinks_ready().await;
    }
    let recovered = Instant::now();
    eprintln!(
        "{scenario}: recovered {} ms after the fault began",
        recovered.duration_since(fault_began).as_millis()
    );
    load.recovered(recovered);
    tokio::time::sleep(STEADY).await;
    // Requests sent during the fault may take up to the Worker's deadline:
    // the load goes on until every kind of call was also sent, and
    // answered, after recovery.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !load.seen_every_call_after_recovery() {
        assert!(
            Instant::now() < deadline,
            "{scenario}: some calls were not answered after recovery"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.stop();

    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    let (upload_answers, uploads) = uploads.await.unwrap();
    answers.extend(upload_answers);
    Run {
        scenario,
        fault_began,
        recovered,
        answers,
        uploads,
        slugs,
    }
}

impl Run {
    /// Every answer is one the design allows for when it was sent.
    fn check_answers(&self, dependency: Dependency) {
        let mut during = 0;
        for a in &self.answers {
            let overlaps = a.answered >= self.fault_began && a.sent < self.recovered;
            during += usize::from(overlaps);
            let ok = match (&a.status, a.call) {
                (Ok(200 | 201), _) => true,
                // The file never reached the presigned URL's server.
                (_, Call::Store) => overlaps && a.call.needs(dependency),
                (Ok(503 | 504), _) => {
                    overlaps
                        && a.call.needs(dependency)
                        && matches!(
                            a.problem.as_deref(),
                            Some("/problems/unavailable" | "/problems/timeout")
                        )
                }
                _ => false,
            };
            assert!(
                ok,
                "{}: {:?} sent {:?} after the fault began{}: {:?} {:?}",
                self.scenario,
                a.call,
                a.sent.checked_duration_since(self.fault_began),
                if overlaps { " (during it)" } else { "" },
                a.status,
                a.problem
            );
        }
        assert!(during > 0, "{}: no request met the fault", self.scenario);
        if dependency == Dependency::Telemetry {
            let slowest = self
                .answers
                .iter()
                .map(|a| a.answered.duration_since(a.sent))
                .max()
                .unwrap_or_default();
            assert!(
                slowest < SINK_SEND_TIMEOUT,
                "{}: an answer took {slowest:?}, as long as a send to a sink may",
                self.scenario
            );
        }
        for call in ALL_CALLS {
            let after = |a: &&Answer| a.call == call && a.sent >= self.recovered;
            assert!(
                self.answers.iter().filter(after).count() > 0,
                "{}: no {call:?} after recovery; the last ones: {:?}",
                self.scenario,
                self.answers
                    .iter()
                    .filter(|a| a.call == call)
                    .rev()
                    .take(6)
                    .map(|a| (
                        a.sent.duration_since(self.fault_began).as_millis(),
                        a.answered.duration_since(a.sent).as_millis(),
                        a.status.clone()
                    ))
                    .collect::<Vec<_>>()
            );
        }
    }

    /// TiDB holds each acknowledged write once and nothing twice, and reads
    /// after recovery show the newest revision.
    async fn check_pages(&self, db: &mut sqlx::MySqlConnection) {
        for slug in &self.slugs {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT r.number, CONVERT(r.body USING utf8mb4) FROM revisions r \
                 JOIN pages p ON p.id = r.page_id WHERE p.slug = ? ORDER BY r.number",
            )
            .bind(slug)
            .fetch_all(&mut *db)
            .await
            .unwrap();
            let numbers: Vec<i64> = rows.iter().map(|(n, _)| *n).collect();
            let expected: Vec<i64> = (1..=rows.len() as i64).collect();
            assert_eq!(numbers, expected, "{slug}: revisions without gaps");
            let writes: Vec<&Answer> = self
                .answers
                .iter()
                .filter(|a| a.call == Call::Write && a.slug.as_ref() == Some(slug))
                .collect();
            for (number, body) in &rows {
                let sent = writes
                    .iter()
                    .filter(|a| a.sent_body.as_ref() == Some(body))
                    .count();
                assert_eq!(
                    sent, 1,
                    "{slug}: revision {number} ({body:?}) is a write this test sent"
                );
                let copies = rows.iter().filter(|(_, b)| b == body).count();
                assert_eq!(copies, 1, "{slug}: {body:?} is stored once");
            }
            for write in &writes {
                if let Some((body, revision)) = &write.page {
                    assert!(
                        rows.contains(&(*revision, body.clone())),
                        "{slug}: the acknowledged revision {revision} ({body:?}) is in TiDB"
                    );
                }
            }
            let newest = rows.last().expect("the writes before the fault landed");
            let read = e2e::json(http().get(format!("{}/v1/pages/{slug}", api()))).await;
            assert_eq!(
                (
                    read["body"].as_str().unwrap(),
                    read["revision"].as_i64().unwrap()
                ),
                (newest.1.as_str(), newest.0),
                "{slug}: a read after recovery shows the newest revision"
            );
        }
    }

    /// Nothing recorded complete without its object, and every file that
    /// reached storage whole completes once storage is back.
    async fn check_uploads(&self, db: &mut sqlx::MySqlConnection, client: &str) {
        let head = |id: &str| {
            let key = format!("uploads/{id}");
            async move {
                e2e::storage()
                    .head_object(&key, SystemTime::now(), Duration::from_secs(10))
                    .await
                    .unwrap()
            }
        };
        for upload in &self.uploads {
            let object = head(&upload.id).await;
            let mut status: String = sqlx::query_scalar(
                "SELECT CONVERT(status USING utf8mb4) FROM uploads WHERE id = ?",
            )
            .bind(&upload.id)
            .fetch_one(&mut *db)
            .await
            .unwrap();
            if upload.completed {
                assert_eq!(status, "complete", "{}: acknowledged", upload.id);
            }
            if let Some(stored) = object.as_ref().filter(|_| status != "complete") {
                let done = through_the_binding(
                    http().post(format!("{}/v1/uploads/{}/complete", api(), upload.id)),
                    client,
                )
                .send()
                .await
                .unwrap();
                let whole = stored.size == UPLOADED.len() as u64
                    && stored.content_type.as_deref() == Some("text/plain");
                if upload.stored || whole {
                    assert_eq!(
                        done.status(),
                        200,
                        "{}: completes once storage is back",
                        upload.id
                    );
                    status = "complete".into();
                } else {
                    // A PUT the store died in, never acknowledged: s3s-fs
                    // moves an object's bytes into place before it writes
                    // the object's content type, so a SIGTERM between the
                    // two leaves an object without one (B2 shows an object
                    // with its metadata or not at all). Completing must
                    // refuse it and delete it.
                    assert_eq!(
                        done.status(),
                        422,
                        "{}: {stored:?} is not what was declared",
                        upload.id
                    );
                    assert!(
                        head(&upload.id).await.is_none(),
                        "{}: refused, yet kept",
                        upload.id
                    );
                }
            }
            if status == "complete" {
                assert!(
                    object.is_some(),
                    "{}: complete without its object",
                    upload.id
                );
            } else {
                assert!(
                    !upload.stored,
                    "{}: stored, yet neither complete nor in storage",
                    upload.id
                );
            }
        }
        assert!(
            self.uploads.iter().any(|u| u.completed),
            "{}: no upload completed",
            self.scenario
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dependency_fails_under_load_and_nothing_is_lost_or_duplicated() {
    let mut db = e2e::database().await;
    let client = format!("2001:db8:{}::1", &unique("")[..4]);
    for dependency in [
        Dependency::Redis,
        Dependency::Database,
        Dependency::Gateway,
        Dependency::Storage,
        Dependency::Telemetry,
    ] {
        for fault in [Fault::Hang, Fault::Stop] {
            let run = run(dependency, fault).await;
            let failed = run
                .answers
                .iter()
                .filter(|a| !matches!(a.status, Ok(200 | 201)))
                .count();
            eprintln!(
                "{}: {} answers, {failed} refused during the fault, {} uploads",
                run.scenario,
                run.answers.len(),
                run.uploads.len()
            );
            run.check_answers(dependency);
            if dependency == Dependency::Database && matches!(fault, Fault::Stop) {
                // The connection above did not survive the restart.
                db = e2e::database().await;
            }
            run.check_pages(&mut db).await;
            run.check_uploads(&mut db, &client).await;
        }
    }
}
