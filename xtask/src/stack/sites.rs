//! The web and admin Pages sites under `wrangler pages dev`, each serving
//! its directory in `pages-shim/sites/` exactly as `wrangler pages deploy`
//! uploads it (static files plus the shim as `_worker.js`), with the `API`
//! service binding to the stack's API Worker and the shared
//! `BINDING_SECRET`, as the deployed projects get them.
//!
//! The binding crosses processes through wrangler's dev registry: the API's
//! `wrangler dev` registers itself there under the Worker's name, and each
//! `wrangler pages dev` finds it there. The registry is a directory inside
//! the stack's state directory (see `super::wrangler_env`, which both
//! wrangler commands get), so a test stack's sites never reach a dev
//! stack's Worker of the same name.

use std::path::Path;
use std::process::Command;

use stack_manifest::{Site, Sites};

use super::{data_dir, Launch, Probe};
use crate::project;

/// The sites, in the order their ports are given.
pub const SITES: [&str; 2] = ["web", "admin"];

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
    let api = project::ApiWorker::read()?;
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
            std::fs::write(
                cwd.join("wrangler.toml"),
                pages_config(site, &site_dir, &api),
            )?;
            let mut command = Command::new(wrangler);
            command
                .args(["pages", "dev"])
                .arg(&site_dir)
                .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
                .args(["--inspector-port", &inspector.to_string()])
                // `pages dev` reads no `.dev.vars` or `--env-file` for a
                // Pages project: the secret (random per stack, valid only
                // for this stack's Worker on 127.0.0.1, and in stack.json
                // anyway) goes on the command line. The `API` binding is
                // in the wrangler.toml only (see `pages_config`).
                .args(["--binding", &format!("BINDING_SECRET={binding_secret}")])
                .arg("--persist-to")
                .arg(cwd.join("state"))
                .args(["--show-interactive-dev-session=false", "--log-level=info"])
                .current_dir(&cwd);
            super::wrangler_env(&mut command, state);
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

/// The Pages project's configuration for `pages dev`. The `API` service
/// binding is declared here, as the deployed project declares it, and not
/// also with `--service` on the command line: wrangler 4 connects a
/// binding from either through the dev registry (tried with the pinned
/// 4.86: each alone reaches the Worker), so one declaration is enough.
fn pages_config(site: &str, site_dir: &Path, api: &project::ApiWorker) -> String {
    format!(
        "# Written by cargo xtask: the local `{site}` Pages project.\n\
         name = \"{name}-{site}\"\n\
         pages_build_output_dir = {dir:?}\n\
         compatibility_date = {date:?}\n\
         [vars]\n\
         ENVIRONMENT = \"dev\"\n\
         [[services]]\n\
         binding = \"API\"\n\
         service = {name:?}\n",
        name = api.name,
        date = api.compatibility_date,
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
    fn the_config_binds_the_api_worker_of_wrangler_toml() {
        let api = project::ApiWorker::read().unwrap();
        assert_eq!(api.name, "edge-api");
        let config: toml::Value =
            toml::from_str(&pages_config("web", Path::new("/site"), &api)).unwrap();
        assert_eq!(config["name"].as_str(), Some("edge-api-web"));
        assert_eq!(
            config["compatibility_date"].as_str(),
            Some(api.compatibility_date.as_str())
        );
        assert_eq!(config["services"][0]["binding"].as_str(), Some("API"));
        assert_eq!(config["services"][0]["service"].as_str(), Some("edge-api"));
    }

    #[test]
    fn origins_cover_both_loopback_names() {
        assert_eq!(
            origins(&[8788]),
            ["http://127.0.0.1:8788", "http://localhost:8788"]
        );
    }
}
