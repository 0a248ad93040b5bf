//! The Worker's cron (wrangler.toml `[triggers]`, every minute): the
//! periodic tasks. Each runs whatever the other's outcome; a task that
//! fails leaves its work for the next run.

use std::sync::Arc;

use crate::pages::missed;
use crate::App;

/// Runs every task once: what each did (`Ok`) or why it failed (`Err`),
/// one line each, for the Worker's log.
pub async fn run(app: &Arc<App>) -> Vec<Result<String, String>> {
    if app.tidb.is_none() {
        return vec![Ok("nothing to do: TiDB is not configured".into())];
    }
    let drained = match missed::drain(app).await {
        Ok(drained) => Ok(format!(
            "missed invalidations: {} landed{}",
            drained.landed,
            if drained.left {
                ", some left for the next run"
            } else {
                ""
            }
        )),
        Err(e) => Err(format!("missed invalidations: {e}")),
    };
    let swept = match crate::uploads::sweep(app).await {
        _ if app.b2.is_none() => Ok("upload sweep: skipped, B2 is not configured".into()),
        Ok(report) => Ok(format!(
            "upload sweep: {} removed, {} left for the next run",
            report.removed, report.failed
        )),
        Err(e) => Err(format!("upload sweep failed: {e}")),
    };
    vec![drained, swept]
}
