//! `cargo xtask graph --env E`: the environment's resources and what each
//! depends on, as a Mermaid diagram (paste into any Markdown that renders
//! Mermaid, such as a GitHub comment). Drawn from the description alone,
//! so it needs no token.

use std::fmt::Write as _;

use super::config::Resolved;

pub fn mermaid(r: &Resolved) -> String {
    let mut out = String::from("flowchart LR\n");
    let node = |out: &mut String, id: &str, label: &str| {
        let _ = writeln!(out, "  {id}[\"{}\"]", label.replace('"', "'"));
    };
    let edge = |out: &mut String, from: &str, to: &str, label: &str| {
        if label.is_empty() {
            let _ = writeln!(out, "  {from} --> {to}");
        } else {
            let _ = writeln!(out, "  {from} -->|{label}| {to}");
        }
    };
    node(&mut out, "db", "TiDB migrations");
    node(&mut out, "worker", &format!("Worker {}", r.worker.script));
    node(
        &mut out,
        "worker_domain",
        &format!("custom domain {}", r.worker.hostname),
    );
    edge(&mut out, "db", "worker", "schema first");
    edge(&mut out, "worker", "worker_domain", "");
    if !r.worker.crons.is_empty() {
        node(
            &mut out,
            "worker_crons",
            &format!("Cron Triggers {}", r.worker.crons.join(", ")),
        );
        edge(&mut out, "worker", "worker_crons", "");
    }
    if let Some(access) = &r.access {
        node(
            &mut out,
            "token",
            &format!("Access service token {}", access.service_token),
        );
        node(
            &mut out,
            "team",
            &format!("Access policy {} team", access.app),
        );
        node(
            &mut out,
            "health",
            &format!("Access policy {} health checks", access.app),
        );
        node(
            &mut out,
            "app",
            &format!(
                "Access app {} ({})",
                access.app,
                access.hostnames.join(", ")
            ),
        );
        edge(&mut out, "token", "health", "");
        edge(&mut out, "team", "app", "");
        edge(&mut out, "health", "app", "");
        edge(&mut out, "app", "worker", &r.vars_with_aud().join(", "));
    }
    for p in &r.pages {
        let id = |what: &str| format!("{}_{what}", p.key.replace('-', "_"));
        node(&mut out, &id("project"), &format!("Pages {}", p.project));
        node(
            &mut out,
            &id("domain"),
            &format!("Pages domain {}", p.hostname),
        );
        node(
            &mut out,
            &id("dns"),
            &format!("DNS CNAME {} -> {}.pages.dev", p.hostname, p.project),
        );
        if let Some(site) = &p.site {
            node(&mut out, &id("site"), &format!("site {}", site.display()));
            edge(&mut out, &id("project"), &id("site"), "");
        }
        if p.api_binding {
            edge(&mut out, "worker", &id("project"), "API binding");
        }
        edge(&mut out, &id("project"), &id("domain"), "");
        edge(&mut out, &id("project"), &id("dns"), "");
        if r.access
            .as_ref()
            .is_some_and(|a| a.hostnames.contains(&p.hostname))
        {
            edge(&mut out, "app", &id("domain"), "protects");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::Environment;

    #[test]
    fn every_resource_and_dependency_is_drawn() {
        let d = super::super::config::load(&crate::project::root().join("deploy.toml")).unwrap();
        let rc = super::super::config::resolve(&d, Environment::Rc).unwrap();
        let text = mermaid(&rc);
        assert!(text.starts_with("flowchart LR\n"));
        assert!(text.contains("worker[\"Worker edge-api-rc\"]"), "{text}");
        assert!(
            text.contains("app -->|ACCESS_AUD, ACCESS_BINDING_AUD| worker"),
            "{text}"
        );
        let prd = super::super::config::resolve(&d, Environment::Prd).unwrap();
        assert!(
            mermaid(&prd).contains("app -->|ACCESS_BINDING_AUD| worker"),
            "{}",
            mermaid(&prd)
        );
        assert!(
            text.contains("worker_crons[\"Cron Triggers * * * * *\"]")
                && text.contains("worker --> worker_crons"),
            "{text}"
        );
        assert!(
            text.contains("worker -->|API binding| web_project"),
            "{text}"
        );
        assert!(text.contains("app -->|protects| admin_domain"), "{text}");
        let prd = super::super::config::resolve(&d, Environment::Prd).unwrap();
        let text = mermaid(&prd);
        assert!(
            !text.contains("app -->|protects| web_domain"),
            "prd's web is public: {text}"
        );
        assert!(text.contains("app -->|protects| admin_domain"), "{text}");
    }
}
