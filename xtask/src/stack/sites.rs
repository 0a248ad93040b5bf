//! The web and admin Pages sites under `wrangler pages dev`, each serving
//! its directory in `pages-shim/sites/` exactly as `wrangler pages deploy`
//! uploads it (static files plus the shim as `_worker.js`), with the `API`
//! service binding to the stack's API Worker and the shared
//! `BINDING_SECRET`, as the deployed projects get them.
//!
//! The binding crosses processes through wrangler's dev registry: the API's
//! `wrangler dev` registers itself there under the Worker's name, and each
//! `wrangler pages dev` finds it there. The registry is a directory
//! (`WRANGLER_REGISTRY_PATH`) inside the stack's state directory, so a
//! test stack's sites never reach a dev stack's Worker of the same name.

use std::path::{Path, PathBuf};
use std::process::Command;

use stack_manifest::{Site, Sites};

use super::{data_dir, Launch, Probe};
use crate::project;

/// The API Worker's name in wrangler.toml, which the binding names.
const API_WORKER: &str = "edge-api";
/// Not newer than the workerd of the pinned wrangler (as wrangler.toml).
const COMPATIBILITY_DATE: &str = "2026-04-01";

/// The sites, in the order their ports are given.
pub const SITES: [&str; 2] = ["web", "admin"];

/// Where wrangler's dev registry of a stack lives.
pub fn registry_dir(state: &Path) -> PathBuf {
    state.join("wrangler-registry")
}

/// The browser origins of sites served on `ports` (both spellings of the
/// loopback host, as a developer may open either).
pub fn origins(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .flat_map(|port| {
            [
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ]
        })
        .collect()
}

/// The URLs of the sites on `ports` (`SITES` order).
pub fn manifest(ports: &[u16; 2]) -> Sites {
    let site = |port: u16| Site {
        url: format!("http://127.0.0.1:{port}"),
    };
    Sites {
        web: site(ports[0]),
        admin: site(ports[1]),
    }
}

/// One `wrangler pages dev` per site. `ports` and `inspectors` are in
/// `SITES` order.
pub(super) fn prepare(
    wrangler: &Path,
    state: &Path,
    binding_secret: &str,
    ports: &[u16; 2],
    inspectors: &[u16; 2],
) -> anyhow::Result<Vec<Launch>> {
    let sites_dir = project::root().join("pages-shim/sites");
    SITES
        .iter()
        .zip(ports.iter().zip(inspectors))
        .map(|(&site, (&port, &inspector))| {
            // `pages dev` bundles the shim into a temporary directory under
            // the nearest package.json and then looks for a wrangler.toml
            // upwards from there: from the repository it finds the API
            // Worker's and runs the site as a second `edge-api` (which
            // then answers the dev registry for the API). A working
            // directory of its own with a package.json and a wrangler.toml
            // (what the Pages project is configured with in production)
            // keeps it a site.
            let cwd = data_dir(state, &format!("pages-{site}"))?;
            let site_dir = sites_dir.join(site);
            std::fs::write(cwd.join("package.json"), "{\"private\": true}\n")?;
            std::fs::write(cwd.join("wrangler.toml"), pages_config(site, &site_dir))?;
            let mut command = Command::new(wrangler);
            command
                .args(["pages", "dev"])
                .arg(&site_dir)
                .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
                .args(["--inspector-port", &inspector.to_string()])
                // `pages dev` connects a service binding through the dev
                // registry only when it is given here, and reads no
                // `.dev.vars` or `--env-file` for a Pages project: the
                // secret (random per stack, valid only for this stack's
                // Worker on 127.0.0.1, and in stack.json anyway) goes on
                // the command line.
                .args(["--service", &format!("API={API_WORKER}")])
                .args(["--binding", &format!("BINDING_SECRET={binding_secret}")])
                .arg("--persist-to")
                .arg(cwd.join("state"))
                .args(["--show-interactive-dev-session=false", "--log-level=info"])
                .current_dir(&cwd)
                .env("WRANGLER_REGISTRY_PATH", registry_dir(state))
                .env("WRANGLER_SEND_METRICS", "false")
                .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
                .env("WRANGLER_LOG_PATH", state.join("logs/wrangler"))
                .env("NO_COLOR", "1");
            Ok(Launch {
                name: site,
                command,
                // Through the shim and the binding to the API: ready means
                // the whole path works, not just the static files.
                probe: Probe::Http(format!("http://127.0.0.1:{port}/api/healthz")),
            })
        })
        .collect()
}

/// The Pages project's configuration for `pages dev`.
fn pages_config(site: &str, site_dir: &Path) -> String {
    format!(
        "# Written by cargo xtask: the local `{site}` Pages project.\n\
         name = \"edge-api-{site}\"\n\
         pages_build_output_dir = {dir:?}\n\
         compatibility_date = \"{COMPATIBILITY_DATE}\"\n\
         [vars]\n\
         ENVIRONMENT = \"dev\"\n\
         [[services]]\n\
         binding = \"API\"\n\
         service = \"{API_WORKER}\"\n",
        dir = site_dir.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_has_a_directory_with_the_shim() {
        for site in SITES {
            let dir = project::root().join("pages-shim/sites").join(site);
            assert!(dir.join("index.html").is_file(), "{site}");
            assert!(dir.join("_worker.js/index.js").is_file(), "{site}");
        }
    }

    #[test]
    fn origins_cover_both_loopback_names() {
        assert_eq!(
            origins(&[8788]),
            ["http://127.0.0.1:8788", "http://localhost:8788"]
        );
    }
}
