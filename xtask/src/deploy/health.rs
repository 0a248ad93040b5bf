//! Health checks after a deploy: the API's `/readyz` and each Pages site's
//! front page, through Access with the environment's service token where
//! Access is in front, polled until they pass or the time is up.
//!
//! `--edge-url` sends the checks to another address with the hostname in
//! the `Host` header (tests: the Cloudflare stand-in answers as the edge).

use std::time::{Duration, Instant};

use cloudflare::Sensitive;

#[derive(Debug, Clone)]
pub struct Check {
    pub hostname: String,
    pub path: &'static str,
    /// Access credentials, when Access covers the hostname.
    pub access: Option<(String, Sensitive)>,
}

/// Polls every check until each answers 2xx once, or `timeout` passes.
/// Err names the checks that never passed and what they last answered.
pub async fn wait_healthy(
    checks: &[Check],
    edge_url: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<(&Check, String)> = checks.iter().map(|c| (c, String::new())).collect();
    loop {
        let mut still = Vec::new();
        for (check, _) in pending {
            let url = match edge_url {
                Some(edge) => format!("{}{}", edge.trim_end_matches('/'), check.path),
                None => format!("https://{}{}", check.hostname, check.path),
            };
            let mut request = client.get(&url);
            if edge_url.is_some() {
                request = request.header("host", &check.hostname);
            }
            if let Some((id, secret)) = &check.access {
                request = request
                    .header("cf-access-client-id", id)
                    .header("cf-access-client-secret", secret.expose());
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => still.push((check, format!("answered {}", response.status()))),
                Err(e) => still.push((check, format!("unreachable: {}", without_url(&e)))),
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(still
                .iter()
                .map(|(c, why)| format!("https://{}{} {why}", c.hostname, c.path))
                .collect::<Vec<_>>()
                .join("; "));
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}
