//! Every command and flag of `cargo xtask`, in one place. `main.rs` only
//! dispatches; each command lives in its own module.

// The doc comments here are `--help`, where `<ENV>` and `<hostname>` are
// placeholders for the reader, not HTML (and backticks would print as
// they are).
#![allow(rustdoc::invalid_html_tags)]

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run locally, test and deploy the edge API platform.",
    long_about = "Build, run locally, test and deploy the edge API platform.\n\n\
        Every command installs what it needs first (idempotently: a second run \
        skips what is already there) and stops every process it started when it \
        ends, fails or is interrupted.\n\n\
        A flag whose value is a length of time (<SECONDS>) takes seconds (90) \
        or a number with a unit (90s, 15m, 1h, 1m30s)."
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,

    /// Print one JSON document with the result on stdout instead of a table;
    /// progress goes to stderr as plain lines, without spinners.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install every tool the build and the local stack need, then exit.
    Setup,
    /// Build the Worker bundle and check its size against the budget.
    Build(Build),
    /// Start the local stack of real servers and the Worker; Ctrl-C stops all.
    ///
    /// One per clone: a second `dev` refuses to start while the first runs.
    /// With --json, stdout gets one document: {"ready": true, ...} once every
    /// server answers, or {"ok": false, "error": ...} if it never does. A
    /// server that dies after "ready" is reported on stderr only, and the
    /// command exits 1.
    Dev(Dev),
    /// Run formatting and lint checks, native tests, and end-to-end tests
    /// against a local stack of their own.
    Test(Test),
    /// Apply migrations/ to a database over the MySQL protocol (sqlx);
    /// a second run applies nothing.
    Migrate(Migrate),
    /// Load the release Worker and a Hono reference side by side on workerd
    /// (with the local stack behind them) and print requests/s, latencies
    /// and their ratios, each workerd's CPU per request, its share of a
    /// core and its sleeps per request, plus bundle size, first-request
    /// time and memory, and which of the performance targets the run meets.
    Bench(Bench),
    /// Run the coverage-guided fuzz targets in fuzz/ (libFuzzer, built by
    /// cargo-fuzz) for a while each, from the committed seeds in fuzz/seeds
    /// and their corpus in .local/fuzz; fails, naming the saved input, when
    /// one breaks its property.
    Fuzz(Fuzz),
    /// Compare an environment on Cloudflare with deploy.toml and print what
    /// a deploy would change (exit status 2 when something would).
    Plan(Plan),
    /// Migrate TiDB, then create or update Access, the Worker, DNS and
    /// Pages of an environment until it matches deploy.toml; check health
    /// and roll the Worker back if the checks fail.
    Deploy(Deploy),
    /// Send all of an environment's traffic to an earlier Worker version.
    Rollback(Rollback),
    /// Delete everything deploy.toml describes for rc or stg (never prd).
    Destroy(Destroy),
    /// Print an environment's resources and their dependencies as a
    /// Mermaid diagram.
    Graph(Graph),
    /// List an environment's secrets and where each value comes from, or
    /// set one (`--set NAME`, value on standard input).
    Secrets(Secrets),
}

/// Which environment, described where, on which Cloudflare API.
#[derive(Debug, Args)]
pub struct DeployTarget {
    /// The environment.
    #[arg(long, value_enum)]
    pub env: Environment,

    /// The environment description.
    #[arg(long, default_value = "deploy.toml")]
    pub config: std::path::PathBuf,

    /// The Cloudflare API (tests point it at the stand-in). The token comes
    /// from CLOUDFLARE_API_TOKEN, EDGE_API_<ENV>_CLOUDFLARE_API_TOKEN or
    /// .env.<env>, and is never printed.
    #[arg(
        long,
        env = "CLOUDFLARE_API_BASE_URL",
        default_value = cloudflare::DEFAULT_BASE_URL
    )]
    pub api_url: String,
}

#[derive(Debug, Args)]
pub struct Plan {
    #[command(flatten)]
    pub target: DeployTarget,

    /// Compare with this `wrangler deploy --dry-run` output instead of a
    /// fresh release build.
    #[arg(long)]
    pub bundle: Option<std::path::PathBuf>,

    /// Count DNS records at wanted names that this tool did not create as
    /// its own (instead of refusing to plan).
    #[arg(long)]
    pub adopt: bool,
}

#[derive(Debug, Args)]
pub struct Deploy {
    #[command(flatten)]
    pub target: DeployTarget,

    /// Deploy this `wrangler deploy --dry-run` output instead of a fresh
    /// release build.
    #[arg(long)]
    pub bundle: Option<std::path::PathBuf>,

    /// Apply deletes without asking.
    #[arg(long)]
    pub yes: bool,

    /// Send only this share of traffic to the new Worker version (a gradual
    /// deploy); the version serving now keeps the rest. A later deploy
    /// without it moves the new version to 100%.
    #[arg(long, value_parser = parse_percent)]
    pub percent: Option<f64>,

    /// Take over DNS records at wanted names that this tool did not create.
    #[arg(long)]
    pub adopt: bool,

    /// Break the deploy lock even if it has not expired (its holder must be
    /// known to be gone, e.g. a killed CI job).
    #[arg(long)]
    pub break_lock: bool,

    /// Do not migrate TiDB first (it is migrated separately).
    #[arg(long)]
    pub skip_migrations: bool,

    /// Send health checks to this address, with the hostname in the Host
    /// header, instead of https://<hostname> (tests: the stand-in's edge).
    #[arg(long, env = "EDGE_API_DEPLOY_EDGE_URL")]
    pub edge_url: Option<String>,

    /// Seconds the health checks may take to pass before the Worker is
    /// rolled back (at most 20 minutes: the deploy lock must outlive them).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = seconds(1, DEPLOY_HEALTH_TIMEOUT_MAX)
    )]
    pub health_timeout: u64,
}

/// The longest `deploy --health-timeout`, in seconds: the deploy lock
/// (30 minutes, deploy/lock.rs) is renewed just before the checks and
/// must still be this deploy's when they fail and the Worker is rolled
/// back.
pub const DEPLOY_HEALTH_TIMEOUT_MAX: u64 = 20 * 60;

#[derive(Debug, Args)]
pub struct Rollback {
    #[command(flatten)]
    pub target: DeployTarget,

    /// The version to serve (default: the one that served before the
    /// current one).
    #[arg(long)]
    pub to: Option<String>,

    /// Break the deploy lock even if it has not expired.
    #[arg(long)]
    pub break_lock: bool,

    /// Send the health check to this address (see deploy --edge-url).
    #[arg(long, env = "EDGE_API_DEPLOY_EDGE_URL")]
    pub edge_url: Option<String>,

    /// Seconds the health check may take to pass.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = seconds(1, 3600))]
    pub health_timeout: u64,
}

#[derive(Debug, Args)]
pub struct Destroy {
    #[command(flatten)]
    pub target: DeployTarget,

    /// Delete without asking.
    #[arg(long)]
    pub yes: bool,

    /// Break the deploy lock even if it has not expired.
    #[arg(long)]
    pub break_lock: bool,
}

#[derive(Debug, Args)]
pub struct Graph {
    /// The environment.
    #[arg(long, value_enum)]
    pub env: Environment,

    /// The environment description.
    #[arg(long, default_value = "deploy.toml")]
    pub config: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct Secrets {
    /// The environment.
    #[arg(long, value_enum)]
    pub env: Environment,

    /// The environment description.
    #[arg(long, default_value = "deploy.toml")]
    pub config: std::path::PathBuf,

    /// Set this secret in .env.<env> from one line of standard input
    /// (never from an argument, which shell history would keep).
    #[arg(long, value_name = "NAME")]
    pub set: Option<String>,
}

/// The parser of a flag whose value is a length of time in whole seconds,
/// from `min` to `max`: a bare number is seconds (`90`), and a number with
/// a unit is read by humantime (`90s`, `15m`, `1h`, `1m30s`), so the
/// issue's `--soak 60s` and a script's `--soak 60` mean the same.
fn seconds(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let value = match text.parse::<u64>() {
            Ok(value) => value,
            Err(_) => {
                let duration = humantime::parse_duration(text).map_err(|error| {
                    format!("{text:?} is not a length of time such as 90, 90s, 15m or 1h ({error})")
                })?;
                if duration.subsec_nanos() != 0 {
                    return Err(format!("{text:?} is not a whole number of seconds"));
                }
                duration.as_secs()
            }
        };
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(format!("{value} s is outside {min} to {max} s"))
        }
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (1.0..100.0).contains(&value) {
        Ok(value)
    } else {
        Err("a share of traffic from 1 to 99".into())
    }
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Seconds of load per case, target and round.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = seconds(1, 600))]
    pub duration: u64,

    /// Seconds of load per case and target before the rounds, to measure
    /// each Worker as an isolate that has served a while. V8 runs wasm
    /// first as its baseline compiler (Liftoff) made it and compiles a
    /// function with its optimizing one only once that function has run
    /// enough, so the api gets cheaper for a while after its isolate
    /// starts: a fresh isolate's CPU per page write fell from 3.9 to 3.0 ms
    /// over its first 40 s of load, while the JS reference's did not fall
    /// (BENCHMARKS.md, eighth pass).
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = seconds(1, 600))]
    pub warmup: u64,

    /// Requests each case and target must have served in its warm-up: one
    /// that served fewer in `--warmup` seconds is loaded on for as long as
    /// its rate says it needs (at most `--warmup-max` seconds in all).
    /// V8 tiers code up by how often it runs, not by time, so a slow case
    /// (a page write, a few hundred a second) is still partly in the
    /// baseline tier after 15 s where a fast one is long done; 0 warms up
    /// by time alone.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub warmup_requests: u64,

    /// Upper bound, in seconds, of one case and target's warm-up with
    /// `--warmup-requests`.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = seconds(1, 3600))]
    pub warmup_max: u64,

    /// Rounds; each round loads every case on every target in turn, so
    /// drift of the machine hits all targets alike, and each round (and
    /// each case in it) starts from the next target, so none always goes
    /// first or always follows the same one. Figures are medians; a ratio
    /// to the reference is the median of the rounds' own ratios.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,

    /// Starts of the targets' workerds, each a fresh set of isolates that
    /// is warmed up and then loaded for every round; the figures are
    /// medians over the rounds of all starts. Identical code differs by up
    /// to 10 % between two isolates, consistently over the rounds of one
    /// start (BENCHMARKS.md, twelfth pass), so one start's ratios carry its
    /// isolates' few percent; several starts spread that over them, and
    /// the report gives each start's own median ratios beside the whole
    /// run's, so a gap in every start can be told from one isolate's draw.
    /// Each start costs its warm-ups again.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub isolates: u32,

    /// Seconds per case and target (in each workerd start, after its
    /// rounds) of a second load whose responses are timed one by one, with
    /// no correction, on as many connections as wrk's: the p50, p99, p99.9,
    /// longest and count over 10 ms a client of the Worker saw. wrk's own
    /// percentiles are corrected for coordinated omission, which makes its
    /// p99 the length of a run's few longest stalls. 0 leaves it out.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = seconds(0, 600))]
    pub timed: u64,

    /// Open connections of the load generator (wrk -c, one thread).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,

    /// workerd starts over which the first-request time is a median. They
    /// run after the loads, once the cores were 90 % idle for 250 ms (or
    /// 30 s passed), each start going through every target in turn.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub starts: u32,

    /// Leave out the telemetry variants (the api with its sinks live,
    /// stopped and hung), which otherwise run beside the api on every case.
    #[arg(long)]
    pub no_sinks: bool,

    /// Instead of the comparison, a soak: every case at once, steadily, on
    /// the api (telemetry sinks live) for this long (60, 60s or 1m), every
    /// response timed with no correction. Reports each case's responses,
    /// p50, p99, p99.9, longest and errors (any wrong answer fails the run) and
    /// 429s. The load comes from 4,096 client addresses, each far under the
    /// soak's rate limit (20/1s), plus one greedy client reading as fast
    /// as it can from an address of its own: its 429s are the only
    /// intended errors, one of them is checked as a problem document with
    /// `Retry-After`, and a greedy client never refused fails the run. Also
    /// reports workerd's memory at the start, at the end and at its
    /// highest; and
    /// every 10 s, right after a full garbage collection of both isolates
    /// (asked for through V8's inspector), its RSS, JS heap and wasm memory:
    /// what the Worker keeps, without garbage not yet collected.
    #[arg(long, value_name = "SECONDS", value_parser = seconds(10, 3600))]
    pub soak: Option<u64>,

    /// Start the api's workerd (the one without sinks, or the soak's) with
    /// V8's inspector on this address (e.g. `127.0.0.1:9229`), to take CPU
    /// profiles or watch its heaps with Chrome DevTools while it is loaded.
    /// The inspector itself costs a little time per request. The soak
    /// always opens one (on a free port unless this says where).
    #[arg(long, value_name = "ADDRESS")]
    pub inspect: Option<String>,

    /// Have the TiDB gateway record when each statement came and when its
    /// answer was ready (never its text or values), and print for every
    /// case and target with statements, from the rounds: each kind of
    /// statement's median time at the gateway and the median wait before
    /// it from the answer to the statement before it in its transaction
    /// (the Worker's turnaround), and how long transactions held the row
    /// their locking read took (a page write: its `SELECT ... FOR UPDATE`'s
    /// answer to the `COMMIT`'s), and of that hold the Worker's turnarounds
    /// and the gateway's statements. Costs the gateway one line written per
    /// statement, alike for every target (BENCHMARKS.md, eighteenth pass).
    /// Not with `--soak`.
    #[arg(long, conflicts_with = "soak")]
    pub trace_statements: bool,

    /// Take V8 CPU profiles of every target's isolate during each round's
    /// load, write them to this directory (`<case>.<target>.s<start>r<round>
    /// .cpuprofile`, for Chrome DevTools or speedscope) and print where each
    /// target's time per request goes: workerd outside JS, the runtime's API
    /// called from JS, the Worker's JS, its wasm and the garbage collector,
    /// and the functions with the most time of their own. Each workerd then
    /// runs with V8's inspector open, and sampling costs the isolates time:
    /// a profiled run's rates compare with each other, not with other runs.
    /// Not with `--soak`.
    #[arg(long, value_name = "DIR", conflicts_with = "soak")]
    pub profile: Option<std::path::PathBuf>,

    /// Only the cases whose name contains this text (e.g. `pages`). The
    /// cases: healthz, healthz-with-ray (with the ray id Cloudflare puts on
    /// every request, which the request id is taken from),
    /// pages-get-cached, pages-get-cached-browser (the same
    /// read with a browser's 19 headers), pages-get-cached-browser-no-origin
    /// (those headers but its `Origin`, as a read from the API's own origin),
    /// pages-get-uncached, pages-put (every connection writing one page,
    /// queued on its row lock), pages-put-spread (each write to the next of
    /// 64 pages, so none waits on a lock), not-found, cors-preflight.
    pub filter: Option<String>,
}

#[derive(Debug, Args)]
pub struct Fuzz {
    /// Seconds of fuzzing per target. `cargo xtask test` runs each for 15
    /// seconds; an hour per target is a long run.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = seconds(1, 604_800))]
    pub time: u64,

    /// Fuzz nothing; instead fold each target's local corpus
    /// (.local/fuzz/corpus) into its committed seeds (fuzz/seeds), keeping
    /// a small set of inputs that reaches every code edge either reaches
    /// (libFuzzer's -set_cover_merge=1). Run it after a long run, then
    /// commit fuzz/seeds.
    #[arg(long, conflicts_with = "time")]
    pub update_seeds: bool,

    /// The targets to run (all when none is named): access_token,
    /// api_requests, api_writes, resp_handshake, resp_replies, tidb_binder,
    /// tidb_response.
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["local", "env", "url"])
))]
pub struct Migrate {
    /// The MariaDB of the running `cargo xtask dev` (from .local/dev/stack.json).
    #[arg(long)]
    pub local: bool,

    /// An environment's TiDB Cloud database, over TLS with certificate
    /// checks. Its URL (mysql://user:password@host:4000/database) comes
    /// from the variable EDGE_API_<ENV>_TIDB_DATABASE_URL, never from the
    /// repository, and is never printed.
    #[arg(long, value_enum)]
    pub env: Option<Environment>,

    /// Any MySQL-protocol database, by URL (tests, one-off databases).
    #[arg(long)]
    pub url: Option<String>,

    /// The migrations directory (default: migrations/ of the repository).
    #[arg(long)]
    pub source: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct Build {
    /// Also produce the exact bundle that `wrangler deploy --env ENV` would
    /// upload (a wrangler dry run into target/bundle/ENV) and report its size.
    #[arg(long, value_enum)]
    pub env: Option<Environment>,
}

#[derive(Debug, Args)]
pub struct Dev {
    /// Reuse the data (database, buckets, events, metrics) of the previous
    /// `cargo xtask dev` instead of starting from empty servers.
    #[arg(long)]
    pub keep_data: bool,

    /// Port for the API Worker; 0 picks a free one.
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct Test {
    /// Skip the end-to-end suite (no local stack is started).
    #[arg(long)]
    pub no_e2e: bool,

    /// Keep the test stack's state directory (logs, data) after the run,
    /// even when every test passed. It is always kept when one fails.
    #[arg(long)]
    pub keep_state: bool,

    /// Only run tests whose name contains this string (passed to the test
    /// binaries of every suite; schemathesis, which has no test names, runs
    /// as one test named `schema`). A suite with no such test passes and
    /// says so; the run fails when no suite has one. fmt and clippy always
    /// run.
    pub filter: Option<String>,
}

/// A deployment environment, as named in wrangler.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// Release candidate: behind Cloudflare Access.
    Rc,
    /// Staging: behind Cloudflare Access.
    Stg,
    /// Production: public (admin excepted).
    Prd,
}

impl Environment {
    pub fn name(self) -> &'static str {
        match self {
            Environment::Rc => "rc",
            Environment::Stg => "stg",
            Environment::Prd => "prd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn migrate_takes_one_target_and_an_optional_source() {
        let parsed =
            Xtask::try_parse_from(["xtask", "migrate", "--url", "mysql://h/db", "--source", "m"])
                .unwrap();
        let Command::Migrate(migrate) = parsed.command else {
            panic!("not migrate");
        };
        assert_eq!(migrate.url.as_deref(), Some("mysql://h/db"));
        assert_eq!(migrate.source.as_deref(), Some(std::path::Path::new("m")));
        assert!(Xtask::try_parse_from(["xtask", "migrate", "--source", "m"]).is_err());
        assert!(Xtask::try_parse_from(["xtask", "migrate", "--local", "--url", "u"]).is_err());
    }

    #[test]
    fn lengths_of_time_take_seconds_or_a_unit() {
        let soak = |text: &str| {
            Xtask::try_parse_from(["xtask", "bench", "--soak", text]).map(|parsed| {
                let Command::Bench(bench) = parsed.command else {
                    panic!("not bench");
                };
                bench.soak
            })
        };
        // The issue's own `--soak 60s`, and the same as plain seconds.
        assert_eq!(soak("60s").unwrap(), Some(60));
        assert_eq!(soak("60").unwrap(), Some(60));
        assert_eq!(soak("2m").unwrap(), Some(120));
        assert_eq!(soak("1m30s").unwrap(), Some(90));
        assert_eq!(soak("1h").unwrap(), Some(3600));
        // Out of the flag's range, in either form.
        for text in ["9", "9s", "2h", "3601"] {
            let error = soak(text).unwrap_err().to_string();
            assert!(error.contains("outside 10 to 3600 s"), "{text}: {error}");
        }
        // Not a length of time, or not whole seconds.
        assert!(soak("-5").is_err());
        for text in ["", "sixty", "60 parsecs", "1.5"] {
            let error = soak(text).unwrap_err().to_string();
            assert!(
                error.contains("is not a length of time"),
                "{text:?}: {error}"
            );
        }
        let error = soak("1500ms").unwrap_err().to_string();
        assert!(error.contains("not a whole number of seconds"), "{error}");
        // `--timed 0` still leaves the timed load out; the others start at 1.
        let bench = |args: &[&str]| {
            let parsed = Xtask::try_parse_from(["xtask", "bench"].iter().chain(args)).unwrap();
            let Command::Bench(bench) = parsed.command else {
                panic!("not bench");
            };
            bench
        };
        assert_eq!(bench(&["--timed", "0"]).timed, 0);
        assert_eq!(bench(&["--duration", "10s", "--warmup", "1m"]).duration, 10);
        assert_eq!(bench(&["--duration", "10s", "--warmup", "1m"]).warmup, 60);
        assert!(Xtask::try_parse_from(["xtask", "bench", "--duration", "0s"]).is_err());
        let defaults = bench(&[]);
        assert_eq!(
            (
                defaults.duration,
                defaults.warmup,
                defaults.warmup_max,
                defaults.timed,
                defaults.soak
            ),
            (5, 15, 120, 5, None)
        );
        let parsed = Xtask::try_parse_from(["xtask", "fuzz", "--time", "1h"]).unwrap();
        let Command::Fuzz(fuzz) = parsed.command else {
            panic!("not fuzz");
        };
        assert_eq!(fuzz.time, 3600);
    }

    #[test]
    fn deploy_health_checks_end_well_within_the_lock() {
        let timeout = |text: &str| {
            let args = ["xtask", "deploy", "--env", "rc", "--health-timeout", text];
            Xtask::try_parse_from(args).map(|parsed| {
                let Command::Deploy(deploy) = parsed.command else {
                    panic!("not deploy");
                };
                deploy.health_timeout
            })
        };
        assert_eq!(timeout("20m").unwrap(), 1200);
        for text in ["1h", "3600", "1201"] {
            let error = timeout(text).unwrap_err().to_string();
            assert!(error.contains("outside 1 to 1200 s"), "{text}: {error}");
        }
    }

    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} --{id} has no help text");
            }
            for sub in cmd.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no about",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Xtask::command(), "cargo xtask");
    }
}
