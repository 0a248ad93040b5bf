//! The API Worker behind a caller that goes away mid-request.
//!
//! On Cloudflare, a request whose client disconnects is cancelled, and with
//! it every `fetch()` and socket read the Worker still waits on; so is a
//! request whose caller aborts its service-binding call (the Pages shim's,
//! when the browser leaves). Locally a client that hangs up does not get
//! that far: workerd's HTTP listener, and wrangler dev's proxy in front of
//! it, let the request run on (measured: a write whose client had hung up
//! still committed). An aborted service-binding call is cancelled in workerd
//! as in production, so this starts a second workerd (the one wrangler
//! runs) with the stack's own API bundle (the files `wrangler dev` serves,
//! with the stack's variables and compatibility date, from its manifest)
//! and `e2e/workers/abort-caller.js` in front of it, bound to it as `API`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stack_manifest::Api;

use crate::{repository, stack};

/// A workerd serving the caller; stopped when dropped.
pub struct AbortingCaller {
    url: String,
    workerd: Child,
}

impl AbortingCaller {
    /// Starts the caller and waits until the API answers through it.
    pub async fn start() -> AbortingCaller {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let api = stack().api.as_ref().expect("the stack runs the API Worker");
        let dir = stack().state_dir.join("abort-caller");
        // workerd embeds files relative to its config (absolute paths are
        // refused), so the config and copies of the files sit together.
        // The stack's own Worker: its entry with its bundle in `build/`.
        let worker = api.entry.parent().expect("the entry's directory");
        std::fs::create_dir_all(dir.join("build")).expect("caller directory");
        for (from, to) in [
            (
                repository().join("e2e/workers/abort-caller.js"),
                "caller.js",
            ),
            (api.entry.clone(), "entry.mjs"),
            (worker.join("build/index.js"), "build/index.js"),
            (worker.join("build/release.js"), "build/release.js"),
            (worker.join("build/index_bg.wasm"), "build/index_bg.wasm"),
        ] {
            std::fs::copy(&from, dir.join(to))
                .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
        let config = dir.join("workerd.capnp");
        std::fs::write(&config, config_text(api, port)).expect("caller config");
        let log = std::fs::File::create(dir.join("workerd.log")).expect("caller log");
        let workerd = Command::new(&api.workerd)
            .arg("serve")
            .arg(&config)
            .arg("--experimental")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting workerd");
        let caller = AbortingCaller {
            url: format!("http://127.0.0.1:{port}"),
            workerd,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = crate::http()
                .get(format!("{}/healthz", caller.url))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return caller;
            }
            assert!(
                Instant::now() < deadline,
                "the aborting caller never answered (see {})",
                dir.join("workerd.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The caller's URL for `path`, the call to the API aborted `after`
    /// it was made.
    pub fn url(&self, path: &str, after: Duration) -> String {
        format!("{}{path}?abort_after={}", self.url, after.as_millis())
    }
}

impl Drop for AbortingCaller {
    fn drop(&mut self) {
        let _ = self.workerd.kill();
        let _ = self.workerd.wait();
    }
}

/// The stack's Worker variables, from the env file `wrangler dev` reads
/// (`NAME="value"`, with `\\` and `\"` escaped).
fn worker_vars(api: &Api) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(&api.env_file)
        .unwrap_or_else(|e| panic!("{}: {e}", api.env_file.display()));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let value = value.strip_prefix('"')?.strip_suffix('"')?;
            Some((
                name.to_owned(),
                value.replace("\\\"", "\"").replace("\\\\", "\\"),
            ))
        })
        .collect()
}

/// A Cap'n Proto string (JSON's escapes are a subset workerd reads).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The config, beside the files it embeds (see [`AbortingCaller::start`]).
fn config_text(api: &Api, port: u16) -> String {
    let date = quoted(&api.compatibility_date);
    let bindings: String = worker_vars(api)
        .iter()
        .map(|(name, value)| format!("    (name = {}, text = {}),\n", quoted(name), quoted(value)))
        .collect();
    format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "caller", worker = .caller),
    (name = "api", worker = .api),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "caller", address = "127.0.0.1:{port}", http = (), service = "caller")],
);
const caller :Workerd.Worker = (
  modules = [(name = "caller.js", esModule = embed "caller.js")],
  compatibilityDate = {date},
  bindings = [(name = "API", service = "api")],
);
const api :Workerd.Worker = (
  modules = [
    (name = "entry.mjs", esModule = embed "entry.mjs"),
    (name = "build/index.js", esModule = embed "build/index.js"),
    (name = "build/release.js", esModule = embed "build/release.js"),
    (name = "build/index_bg.wasm", wasm = embed "build/index_bg.wasm"),
  ],
  compatibilityDate = {date},
  globalOutbound = "internet",
  bindings = [
{bindings}  ],
);
"#
    )
}
